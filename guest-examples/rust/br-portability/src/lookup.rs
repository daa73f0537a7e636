//! Configuration and lookup logic.

use serde::Deserialize;
use strowger_sdk::portability::*;
use strowger_sdk::regex_sub::Substitution;
use strowger_sdk::template::Template;
use strowger_sdk::{Portability, config, host};

/// Default normalisation: `+55`/`55` + national; `0` + carrier code +
/// national; `0` + national; national.
pub const DEFAULT_NORMALIZE: [&str; 4] = [
    r"^\+?55([1-9][1-9][0-9]{8,9})$",
    r"^0[0-9]{2}([1-9][1-9][0-9]{8,9})$",
    r"^0([1-9][1-9][0-9]{8,9})$",
    r"^([1-9][1-9][0-9]{8,9})$",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "ported")]
    ported_dataset: String,
    #[serde(default = "ranges")]
    ranges_dataset: String,
    #[serde(default)]
    normalize: Option<Vec<String>>,
    #[serde(default = "format")]
    routing_format: String,
}

fn ported() -> String {
    "br-ported".into()
}
fn ranges() -> String {
    "br-ranges".into()
}
fn format() -> String {
    "${RN1}${NUMBER}".into()
}

/// The plugin.
pub struct BrPortability {
    ported: String,
    ranges: String,
    normalize: Vec<Substitution>,
    format: Template,
}

impl Default for BrPortability {
    fn default() -> Self {
        BrPortability::from_config("{}").expect("default config")
    }
}

fn rn1(value: &str) -> &str {
    value
        .split([';', ',', ' ', '\t'])
        .next()
        .unwrap_or("")
        .trim()
}

impl BrPortability {
    /// Build from JSON configuration.
    pub fn from_config(json: &str) -> Result<Self, String> {
        let raw: Raw = config::parse(json)?;
        let normalize = match raw.normalize {
            Some(list) => list,
            None => DEFAULT_NORMALIZE.iter().map(|s| s.to_string()).collect(),
        }
        .iter()
        .map(|re| {
            let s = Substitution::new(re, "$1")
                .map_err(|e| format!("normalize: {e} (each regex needs capture group 1)"))?;
            Ok(s)
        })
        .collect::<Result<Vec<_>, String>>()?;
        let format = Template::parse(&raw.routing_format)?;
        if let Some(v) = format.vars().find(|v| !matches!(*v, "RN1" | "NUMBER")) {
            return Err(format!(
                "routing_format: unknown variable `{v}` (RN1, NUMBER)"
            ));
        }
        if raw.ported_dataset.is_empty() && raw.ranges_dataset.is_empty() {
            return Err("at least one of ported_dataset and ranges_dataset is needed".into());
        }
        Ok(BrPortability {
            ported: raw.ported_dataset,
            ranges: raw.ranges_dataset,
            normalize,
            format,
        })
    }

    /// The national number `number` normalises to, if any.
    pub fn national(&self, number: &str) -> Option<String> {
        let n: String = number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        self.normalize
            .iter()
            .find(|s| s.regex().is_match(&n))
            .and_then(|s| s.apply(&n))
            .filter(|s| !s.is_empty())
    }

    /// Look `number` up in the host data sets.
    pub fn lookup_number(&self, number: &str) -> Option<PortabilityResult> {
        let national = self.national(number)?;
        let (value, ported) = match (!self.ported.is_empty())
            .then(|| host::dataset_get(&self.ported, &national))
            .flatten()
        {
            Some(v) => (v, true),
            None => {
                if self.ranges.is_empty() {
                    return None;
                }
                (
                    host::dataset_longest_prefix(&self.ranges, &national)?.value,
                    false,
                )
            }
        };
        let carrier = rn1(&value).to_string();
        if carrier.is_empty() {
            return None;
        }
        let routing_number = self.format.expand(|v| match v {
            "RN1" => Some(carrier.as_str()),
            "NUMBER" => Some(national.as_str()),
            _ => None,
        });
        Some(PortabilityResult {
            number: national,
            carrier,
            routing_number,
            ported,
        })
    }
}

impl Portability for BrPortability {
    fn init(&mut self, config: &str) -> Result<(), String> {
        *self = BrPortability::from_config(config)?;
        Ok(())
    }

    fn lookup(&self, query: PortabilityQuery) -> Result<Option<PortabilityResult>, String> {
        let r = self.lookup_number(&query.number);
        host::counter_add(
            match &r {
                Some(p) if p.ported => "ported",
                Some(_) => "range",
                None => "unknown",
            },
            1,
        );
        Ok(r)
    }
}
