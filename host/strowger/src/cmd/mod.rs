pub mod import;
pub mod plugin;
pub mod plugin_build;
pub mod policy;
pub mod serve;
pub mod status;
