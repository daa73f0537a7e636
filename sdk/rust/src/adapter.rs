//! Glue between the SDK traits and the generated `Guest` traits.
//!
//! One plugin value lives per instance (wasm instances are single-threaded),
//! created by `init` or, should the host call a hook first, lazily from
//! [`crate::host::config`].

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings;

thread_local! {
    static PLUGIN: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn init_with<T: Default + 'static>(
    config: &str,
    init: impl FnOnce(&mut T, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut plugin = T::default();
    init(&mut plugin, config)?;
    PLUGIN.with_borrow_mut(|slot| *slot = Some(Box::new(plugin)));
    Ok(())
}

fn with_plugin<T: Default + 'static, R>(
    init: impl FnOnce(&mut T, &str) -> Result<(), String>,
    f: impl FnOnce(&T) -> Result<R, String>,
) -> Result<R, String> {
    let ready = PLUGIN.with_borrow(|slot| slot.as_ref().is_some_and(|p| p.is::<T>()));
    if !ready {
        init_with::<T>(&crate::host::config(), init)?;
    }
    PLUGIN.with_borrow(|slot| {
        let plugin = slot
            .as_ref()
            .and_then(|p| p.downcast_ref::<T>())
            .ok_or_else(|| "plugin not initialised".to_string())?;
        f(plugin)
    })
}

macro_rules! adapter {
    ($name:ident, $trait:ident, $world:ident) => {
        #[doc(hidden)]
        pub struct $name<T>(PhantomData<T>);

        impl<T: crate::$trait> bindings::$world::exports::strowger::plugin::lifecycle::Guest
            for $name<T>
        {
            fn init(config: String) -> Result<(), String> {
                init_with::<T>(&config, T::init)
            }
        }
    };
}

adapter!(RouterExport, Router, route);
adapter!(AuthorizerExport, Authorizer, authorize);
adapter!(PortabilityExport, Portability, portability);
adapter!(RewriterExport, Rewriter, rewrite);

impl<T: crate::Router> bindings::route::exports::strowger::plugin::router::Guest
    for RouterExport<T>
{
    fn route(call: crate::route::Call) -> Result<crate::route::RouteDecision, String> {
        with_plugin(T::init, |p: &T| p.route(call))
    }
}

impl<T: crate::Authorizer> bindings::authorize::exports::strowger::plugin::authorizer::Guest
    for AuthorizerExport<T>
{
    fn authorize(
        request: crate::authorize::AuthRequest,
    ) -> Result<crate::authorize::AuthDecision, String> {
        with_plugin(T::init, |p: &T| p.authorize(request))
    }
}

impl<T: crate::Portability>
    bindings::portability::exports::strowger::plugin::portability_lookup::Guest
    for PortabilityExport<T>
{
    fn lookup(
        query: crate::portability::PortabilityQuery,
    ) -> Result<Option<crate::PortabilityResult>, String> {
        with_plugin(T::init, |p: &T| p.lookup(query))
    }
}

impl<T: crate::Rewriter> bindings::rewrite::exports::strowger::plugin::rewriter::Guest
    for RewriterExport<T>
{
    fn rewrite(request: crate::rewrite::RewriteRequest) -> Result<crate::rewrite::Numbers, String> {
        with_plugin(T::init, |p: &T| p.rewrite(request))
    }
}
