//! Configuration from the environment: one dialect, `TRUSTCAPTCHA_<SECTION>__<KEY>`, that can
//! set any key of the file, so that secrets and per-deployment values stay out of it.

use super::{Config, ConfigError};

/// The process's variables that can configure the server (those named `TRUSTCAPTCHA_…` whose
/// name and value are text), for [`load`](super::load).
#[must_use]
pub fn process_environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| name.starts_with("TRUSTCAPTCHA_"))
        .collect()
}

/// The older names, as `(old, new)`: whole names, then a site's `<NAME>_…` suffixes.
const ALIASES: [(&str, &str); 2] = [
    (
        "TRUSTCAPTCHA_ADMIN_TOKEN",
        "TRUSTCAPTCHA_SERVER__ADMIN_TOKEN",
    ),
    ("TRUSTCAPTCHA_STORE_URL", "TRUSTCAPTCHA_STORE__URL"),
];
const SITE_ALIASES: [(&str, &str); 2] =
    [("_API_KEYS", "API_KEYS"), ("_BYPASS_KEYS", "BYPASS_KEYS")];

/// `vars` with the older names given their current ones (warning once for each), without
/// overriding a current name that is set too.
fn canonical(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let mut current: Vec<(String, String)> = Vec::with_capacity(vars.len());
    let mut aliased = Vec::new();
    for (name, value) in vars {
        if name.contains("__") {
            current.push((name, value));
            continue;
        }
        let whole = ALIASES
            .iter()
            .find(|(old, _)| *old == name)
            .map(|(_, new)| ((*new).to_owned(), value.clone()));
        let site = || {
            SITE_ALIASES.iter().find_map(|(suffix, key)| {
                let site = name.strip_prefix("TRUSTCAPTCHA_")?.strip_suffix(suffix)?;
                let list: Vec<toml::Value> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(|key| toml::Value::String(key.to_owned()))
                    .collect();
                Some((
                    format!("TRUSTCAPTCHA_SITE__{site}__{key}"),
                    toml::Value::Array(list).to_string(),
                ))
            })
        };
        match whole.or_else(site) {
            Some((new, value)) => {
                tracing::warn!(
                    variable = %name,
                    instead = %new,
                    "a deprecated environment variable name is read; it will be dropped"
                );
                aliased.push((new, value));
            }
            None => current.push((name, value)),
        }
    }
    for (name, value) in aliased {
        if !current.iter().any(|(set, _)| *set == name) {
            current.push((name, value));
        }
    }
    current
}

/// Environment variables that override the configuration, prefix `TRUSTCAPTCHA_`: any key of
/// `[server]` as `TRUSTCAPTCHA_SERVER__<KEY>`, of `[store]` as `TRUSTCAPTCHA_STORE__<KEY>`, and of
/// the site named NAME as `TRUSTCAPTCHA_SITE__<NAME>__<KEY>` (NAME in upper case, every other
/// character than letters and digits as `_`), e.g. `TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS=2048`,
/// `TRUSTCAPTCHA_SITE__SHOP__LOCKED=true`, `TRUSTCAPTCHA_SITE__SHOP__ALLOW_IPS='["10.0.0.0/8"]'`.
/// A value is read as a TOML value when it is one (numbers, booleans, arrays, inline tables),
/// otherwise as a string. Returns `text` with the overrides applied.
///
/// Older names are read as aliases, with a deprecation warning (the new name wins when both are
/// set): `TRUSTCAPTCHA_ADMIN_TOKEN` (`…_SERVER__ADMIN_TOKEN`), `TRUSTCAPTCHA_STORE_URL`
/// (`…_STORE__URL`), and `TRUSTCAPTCHA_<NAME>_API_KEYS` and `…_BYPASS_KEYS`
/// (`…_SITE__<NAME>__API_KEYS`; their value is a comma-separated list).
///
/// # Errors
///
/// When `text` is not TOML, or a variable names a site the file does not have.
pub fn with_environment(
    text: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<String, ConfigError> {
    let mut table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        // Not TOML: the reader explains where.
        Err(_) => return super::explain::read::<super::Config>(text).map(|_| text.to_owned()),
    };
    let mut applied = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in canonical(vars) {
        let Some(path) = name.strip_prefix("TRUSTCAPTCHA_") else {
            continue;
        };
        let value = toml_value(&value);
        let Some((section @ ("SERVER" | "STORE" | "SITE"), rest)) = path.split_once("__") else {
            continue;
        };
        let target = match section {
            "SITE" => {
                let Some((site, _)) = rest.split_once("__") else {
                    problems.push((
                        name.clone(),
                        "names no key: TRUSTCAPTCHA_SITE__<NAME>__<KEY>".into(),
                    ));
                    continue;
                };
                let site_table = table
                    .get_mut("sites")
                    .and_then(toml::Value::as_array_mut)
                    .and_then(|sites| {
                        sites.iter_mut().find_map(|entry| {
                            let entry = entry.as_table_mut()?;
                            let named = entry.get("name")?.as_str()?;
                            (env_name(named) == site).then_some(entry)
                        })
                    });
                let Some(site_table) = site_table else {
                    problems.push((name.clone(), format!("no site is named so ({site})")));
                    continue;
                };
                site_table
            }
            section => table
                .entry(section.to_ascii_lowercase())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| ConfigError::at(&name, format!("[{section}] is not a table")))?,
        };
        let key = rest.rsplit_once("__").map_or(rest, |(_, key)| key);
        target.insert(key.to_ascii_lowercase(), value);
        applied.push(name);
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    if applied.is_empty() {
        return Ok(text.to_owned());
    }
    // The values are not shown: they may be keys.
    let unfit = || {
        ConfigError::at(
            applied.join(", "),
            "a value has the wrong type for its key, or a key is unknown",
        )
    };
    let text = toml::to_string(&table).map_err(|_| unfit())?;
    toml::from_str::<Config>(&text).map_err(|_| unfit())?;
    Ok(text)
}

/// A variable's value as TOML: itself when it is a TOML value, otherwise a string.
fn toml_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// A site name as environment variables spell it: upper case, other characters as `_`.
pub(super) fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
