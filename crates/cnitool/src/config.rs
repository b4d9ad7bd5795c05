//! Network configuration loading, as libcni's `LoadNetworkConf` does it (CNI:libcni/conf.go,
//! docs/spec.md#runtime): `.conflist` files first, then legacy single-plugin `.conf` /
//! `.json` files, version selection from `cniVersion`/`cniVersions`, plugin objects from
//! `<dir>/<name>/*.conf`, and the string booleans libcni accepts.
//!
//! This module only reads files; it runs nothing.

use crate::error::{Error, Result};
use cni::json;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The newest spec version this runtime implements (libcni `version.Current()`); higher
/// entries of `cniVersions` are ignored.
pub const CURRENT_VERSION: SpecVersion = SpecVersion {
    major: 1,
    minor: 1,
    micro: 0,
};

/// A spec version parsed as libcni parses it (`version.ParseVersion`): up to three
/// dot-separated integers, missing parts are 0, and the empty string is 0.1.0 (a config
/// without `cniVersion`).
///
/// libcni compares versions this way rather than against a fixed list, so a config may
/// carry a version our `cni::Version` does not know (`0.3.2`); it is passed to the plugins
/// as written and only fails where a result must be converted to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecVersion {
    /// Major.
    pub major: i64,
    /// Minor.
    pub minor: i64,
    /// Micro (patch).
    pub micro: i64,
}

impl SpecVersion {
    /// Parses `version` with libcni's rules; errors are worded as libcni's.
    pub fn parse(version: &str) -> Result<SpecVersion> {
        if version.is_empty() {
            return Ok(SpecVersion {
                major: 0,
                minor: 1,
                micro: 0,
            });
        }
        let parts: Vec<&str> = version.split('.').collect();
        if parts.len() >= 4 {
            return Err(Error::InvalidVersion(format!(
                "invalid version {version:?}: too many parts"
            )));
        }
        let part = |index: usize, label: &str| -> Result<i64> {
            match parts.get(index) {
                None => Ok(0),
                Some(text) => text.parse().map_err(|_| {
                    Error::InvalidVersion(format!(
                        "failed to convert {label} version part {text:?}: strconv.Atoi: parsing {text:?}: invalid syntax"
                    ))
                }),
            }
        };
        Ok(SpecVersion {
            major: part(0, "major")?,
            minor: part(1, "minor")?,
            micro: part(2, "micro")?,
        })
    }

    /// The 0.4.0 threshold: CHECK exists and DEL receives the cached result.
    pub const V0_4_0: SpecVersion = SpecVersion {
        major: 0,
        minor: 4,
        micro: 0,
    };

    /// The 1.1.0 threshold: STATUS and GC exist.
    pub const V1_1_0: SpecVersion = CURRENT_VERSION;
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// One plugin object of a list, as written by the administrator.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The object itself: every key passes through to the plugin unchanged.
    pub conf: Map<String, Value>,
    /// `type`: the binary to run.
    pub plugin_type: String,
    /// The object's own `name`, if any (only used to describe it in errors; the list's
    /// name is what the plugin receives).
    pub name: Option<String>,
    /// `capabilities`: which runtime arguments this plugin wants in `runtimeConfig`.
    pub capabilities: BTreeMap<String, bool>,
}

impl PluginConfig {
    /// Parses one plugin object (libcni `NetworkPluginConfFromBytes`): a JSON object with a
    /// non-empty string `type`.
    pub fn from_bytes(bytes: &[u8]) -> Result<PluginConfig> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidConfig(format!("error parsing configuration: {e}")))?;
        PluginConfig::from_value(value)
    }

    fn from_value(value: Value) -> Result<PluginConfig> {
        let invalid =
            |what: String| Error::InvalidConfig(format!("error parsing configuration: {what}"));
        let Value::Object(conf) = value else {
            return Err(invalid(format!(
                "expected a JSON object, found {}",
                json_type(&value)
            )));
        };
        // Go decodes these through a struct, whose field names match keys
        // case-insensitively; a wrong JSON type is a decode error there too.
        let plugin_type = match go_field(&conf, "type") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "type: expected a string, found {}",
                    json_type(other)
                )));
            }
        };
        if plugin_type.is_empty() {
            return Err(invalid("missing 'type'".into()));
        }
        let name = match go_field(&conf, "name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => (!s.is_empty()).then(|| s.clone()),
            Some(other) => {
                return Err(invalid(format!(
                    "name: expected a string, found {}",
                    json_type(other)
                )));
            }
        };
        let capabilities = match go_field(&conf, "capabilities") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::Bool(b) => Ok((k.clone(), *b)),
                    other => Err(invalid(format!(
                        "capabilities.{k}: expected a boolean, found {}",
                        json_type(other)
                    ))),
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(invalid(format!(
                    "capabilities: expected an object, found {}",
                    json_type(other)
                )));
            }
        };
        Ok(PluginConfig {
            conf,
            plugin_type,
            name,
            capabilities,
        })
    }

    /// How libcni names this plugin in errors: `type="bridge"`, plus ` name="x"` when the
    /// object has its own name.
    pub fn description(&self) -> String {
        match &self.name {
            Some(name) => format!("type={:?} name={name:?}", self.plugin_type),
            None => format!("type={:?}", self.plugin_type),
        }
    }
}

/// A network configuration list (a "conflist"), loaded and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// `name`.
    pub name: String,
    /// The selected spec version, as a string (what the plugins receive as `cniVersion`).
    pub cni_version: String,
    /// `disableCheck`: CHECK succeeds without running anything.
    pub disable_check: bool,
    /// `disableGC`: GC does nothing.
    pub disable_gc: bool,
    /// `loadOnlyInlinedPlugins`: ignore `<dir>/<name>/*.conf`.
    pub load_only_inlined_plugins: bool,
    /// The plugins, in chain order.
    pub plugins: Vec<PluginConfig>,
    /// The file's bytes (or, for a legacy `.conf`, the list libcni synthesizes from it):
    /// what the cache stores as `config`.
    pub bytes: Vec<u8>,
}

impl NetworkConfigList {
    /// Parses a conflist (libcni `NetworkConfFromBytes`), selecting the version: the
    /// highest of `cniVersions` and `cniVersion` that is not above 1.1.0 (only when
    /// `cniVersions` is present, as libcni does). Plugins from other files are not added
    /// here: see [`NetworkConfigList::from_file`].
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkConfigList> {
        let invalid = |what: String| {
            Error::InvalidConfig(format!("error parsing configuration list: {what}"))
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(raw) = value else {
            return Err(invalid(format!(
                "expected a JSON object, found {}",
                json_type(&value)
            )));
        };
        let name = match raw.get("name") {
            None => return Err(invalid("no name".into())),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(invalid(format!("invalid name type {}", json_type(other)))),
        };
        let mut cni_version = match raw.get("cniVersion") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "invalid cniVersion type {}",
                    json_type(other)
                )));
            }
        };
        if let Some(raw_versions) = raw.get("cniVersions") {
            cni_version = select_version(raw_versions, &cni_version)?;
        }
        let disable_check = read_bool(&raw, "disableCheck")?;
        let disable_gc = read_bool(&raw, "disableGC")?;
        let load_only_inlined_plugins = read_bool(&raw, "loadOnlyInlinedPlugins")?;
        let mut list = NetworkConfigList {
            name,
            cni_version,
            disable_check,
            disable_gc,
            load_only_inlined_plugins,
            plugins: Vec::new(),
            bytes: bytes.to_vec(),
        };
        let plugins = match raw.get("plugins") {
            None if load_only_inlined_plugins => {
                return Err(invalid(
                    "`loadOnlyInlinedPlugins` is true, and no 'plugins' key".into(),
                ));
            }
            // Plugins may all come from <dir>/<name>/*.conf.
            None => return Ok(list),
            Some(Value::Array(plugins)) => plugins,
            Some(other) => {
                return Err(invalid(format!(
                    "invalid 'plugins' type {}",
                    json_type(other)
                )));
            }
        };
        if plugins.is_empty() {
            return Err(invalid("no plugins in list".into()));
        }
        for (index, plugin) in plugins.iter().enumerate() {
            let plugin = PluginConfig::from_value(plugin.clone()).map_err(|e| {
                Error::InvalidConfig(format!("failed to parse plugin config {index}: {e}"))
            })?;
            list.plugins.push(plugin);
        }
        Ok(list)
    }

    /// Reads a conflist file (libcni `NetworkConfFromFile`) and, unless
    /// `loadOnlyInlinedPlugins`, appends the plugin objects of `<its dir>/<name>/*.conf`
    /// in file-name order. A list that ends up with no plugin is an error.
    pub fn from_file(path: &Path) -> Result<NetworkConfigList> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut list = NetworkConfigList::from_bytes(&bytes)?;
        if !list.load_only_inlined_plugins {
            let dir = path.parent().unwrap_or(Path::new("."));
            list.plugins
                .extend(plugin_confs_from_files(dir, &list.name)?);
        }
        if list.plugins.is_empty() {
            return Err(Error::InvalidConfig("no plugin configs found".into()));
        }
        Ok(list)
    }

    /// Wraps a legacy single-plugin config into a one-element list (libcni
    /// `ConfListFromConf`); `bytes` become `{"cniVersion":…,"name":…,"plugins":[…]}`,
    /// compact with sorted keys, exactly as libcni re-marshals it.
    pub fn from_single_plugin(plugin: PluginConfig) -> Result<NetworkConfigList> {
        let string_field = |key: &str| match go_field(&plugin.conf, key) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let mut wrapper = Map::new();
        wrapper.insert("name".into(), Value::String(string_field("name")));
        wrapper.insert(
            "cniVersion".into(),
            Value::String(string_field("cniVersion")),
        );
        wrapper.insert(
            "plugins".into(),
            Value::Array(vec![Value::Object(plugin.conf)]),
        );
        NetworkConfigList::from_bytes(json::to_go_string(&Value::Object(wrapper)).as_bytes())
    }

    /// The selected version, parsed for comparisons.
    pub fn version(&self) -> Result<SpecVersion> {
        SpecVersion::parse(&self.cni_version)
    }
}

/// The highest entry of `cniVersions` and `cni_version` not above [`CURRENT_VERSION`]; if
/// none qualifies, `cni_version` unchanged (libcni keeps it even when it is too new).
fn select_version(raw_versions: &Value, cni_version: &str) -> Result<String> {
    let invalid =
        |what: String| Error::InvalidConfig(format!("error parsing configuration list: {what}"));
    let Value::Array(entries) = raw_versions else {
        return Err(invalid(format!(
            "invalid type for cniVersions: {}",
            json_type(raw_versions)
        )));
    };
    let mut candidates: Vec<(SpecVersion, String)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Value::String(text) = entry else {
            return Err(invalid(format!(
                "invalid type for cniVersions index {index}: {}",
                json_type(entry)
            )));
        };
        let parsed = SpecVersion::parse(text).map_err(|e| {
            invalid(format!(
                "invalid cniVersions entry {text} at index {index}: {e}"
            ))
        })?;
        if parsed <= CURRENT_VERSION {
            candidates.push((parsed, text.clone()));
        }
    }
    if !cni_version.is_empty() {
        let parsed = SpecVersion::parse(cni_version)
            .map_err(|e| invalid(format!("invalid cniVersion {cni_version}: {e}")))?;
        if parsed <= CURRENT_VERSION {
            candidates.push((parsed, cni_version.to_owned()));
        }
    }
    // Which spelling of two equal versions wins ("1.0" vs "1.0.0") is unspecified in
    // libcni (an unstable sort); both compare equal in every later check.
    Ok(candidates
        .into_iter()
        .max_by_key(|(version, _)| *version)
        .map_or_else(|| cni_version.to_owned(), |(_, text)| text))
}

/// A list flag: a JSON boolean or the string "true"/"false" in any case (libcni `readBool`).
fn read_bool(raw: &Map<String, Value>, key: &str) -> Result<bool> {
    match raw.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            lower => Err(Error::InvalidConfig(format!(
                "error parsing configuration list: invalid value {lower:?} for {key}"
            ))),
        },
        Some(other) => Err(Error::InvalidConfig(format!(
            "error parsing configuration list: invalid type {} for {key}",
            json_type(other)
        ))),
    }
}

/// The plugin objects of `<dir>/<name>/*.conf`, in file-name order (libcni
/// `NetworkPluginConfsFromFiles`); a missing directory means none.
fn plugin_confs_from_files(dir: &Path, network: &str) -> Result<Vec<PluginConfig>> {
    let plugin_dir = dir.join(network);
    let files = conf_files(&plugin_dir, &["conf"]).map_err(|e| {
        Error::InvalidConfig(format!(
            "failed to read plugin config files in {}: {e}",
            plugin_dir.display()
        ))
    })?;
    files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).map_err(|source| Error::Read {
                path: file.clone(),
                source,
            })?;
            PluginConfig::from_bytes(&bytes)
        })
        .collect()
}

/// The files of `dir` whose extension (the part after the last `.`) is one of
/// `extensions`, sorted by path (libcni `ConfFiles` + `sort.Strings`). Directories are
/// skipped; a missing `dir` yields no files.
pub fn conf_files(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        // Like Go's DirEntry.IsDir: the entry's own type, so a symlink to a directory is
        // listed (and then fails to read, as in libcni).
        if entry.file_type()?.is_dir() {
            continue;
        }
        // Go's filepath.Ext: everything after the last '.', so a file named just
        // ".conflist" counts (Rust's Path::extension would say it has none).
        let name = entry.file_name();
        let matches = name
            .to_str()
            .and_then(|name| name.rfind('.').map(|dot| &name[dot + 1..]))
            .is_some_and(|ext| extensions.contains(&ext));
        if matches {
            files.push(entry.path());
        }
    }
    // Byte order of the full path, as Go's sort.Strings.
    files.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(files)
}

/// Finds the network `name` in `dir` (libcni `LoadNetworkConf`): the first `.conflist` (in
/// sorted order) with that name; else the first legacy `.conf`/`.json` with that name,
/// wrapped into a list. Every file sorted before the match is parsed, and a malformed one
/// is an error, as in libcni.
pub fn load_network_conf(dir: &Path, name: &str) -> Result<NetworkConfigList> {
    let read_dir_error = |source| Error::Read {
        path: dir.to_owned(),
        source,
    };
    let lists = conf_files(dir, &["conflist"]).map_err(read_dir_error)?;
    for file in &lists {
        let list = NetworkConfigList::from_file(file)?;
        if list.name == name {
            return Ok(list);
        }
    }
    let singles = conf_files(dir, &["conf", "json"]).map_err(read_dir_error)?;
    if singles.is_empty() {
        // With conflists present, "not found" is the message that makes sense.
        return Err(if lists.is_empty() {
            Error::NoConfigsFound {
                dir: dir.to_owned(),
            }
        } else {
            Error::NotFound {
                dir: dir.to_owned(),
                name: name.to_owned(),
            }
        });
    }
    for file in &singles {
        let bytes = std::fs::read(file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        let plugin = PluginConfig::from_bytes(&bytes)?;
        let plugin_name = match go_field(&plugin.conf, "name") {
            Some(Value::String(s)) => s.as_str(),
            _ => "",
        };
        if plugin_name == name {
            return NetworkConfigList::from_single_plugin(plugin);
        }
    }
    Err(Error::NotFound {
        dir: dir.to_owned(),
        name: name.to_owned(),
    })
}

/// The value Go's struct decoding would take for field `key`: an exact key match, else a
/// case-insensitive one (Go `encoding/json` accepts `"Type"` for `type`).
pub(crate) fn go_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The Go type name a JSON value decodes into, for libcni-like messages (`%T`).
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn err_text(result: Result<impl fmt::Debug>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn version_parsing_follows_libcni() {
        let v = |s| SpecVersion::parse(s).unwrap();
        assert_eq!(v(""), v("0.1.0"));
        assert_eq!(v("1"), v("1.0.0"));
        assert_eq!(v("1.1"), CURRENT_VERSION);
        assert!(v("0.10.0") > v("0.4.0"), "numeric, not lexical");
        assert_eq!(
            err_text(SpecVersion::parse("1.0.0.0")),
            "invalid version \"1.0.0.0\": too many parts"
        );
        assert_eq!(
            err_text(SpecVersion::parse("1.x.0")),
            "failed to convert minor version part \"x\": strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn version_selection_picks_the_highest_supported() {
        // (cniVersion, cniVersions, selected)
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (Some("1.0.0"), None, "1.0.0"),
            // Without cniVersions, libcni does not filter: the plugin will refuse it.
            (Some("2.0.0"), None, "2.0.0"),
            (None, None, ""),
            (Some("0.4.0"), Some(r#"["1.0.0", "0.3.1"]"#), "1.0.0"),
            (
                Some("1.0.0"),
                Some(r#"["1.1.0", "1.2.0", "9.0.0"]"#),
                "1.1.0",
            ),
            (None, Some(r#"["0.3.1", "0.10.0", "0.4.0"]"#), "0.10.0"),
            (Some("1.1.0"), Some(r#"["0.4.0"]"#), "1.1.0"),
            // Nothing usable: cniVersion stays, even too new.
            (Some("3.0.0"), Some(r#"["2.0.0"]"#), "3.0.0"),
            (None, Some("[]"), ""),
        ];
        for (version, versions, want) in cases {
            let mut raw = serde_json::json!({"name": "n", "plugins": [{"type": "t"}]});
            if let Some(v) = version {
                raw["cniVersion"] = Value::from(*v);
            }
            if let Some(vs) = versions {
                raw["cniVersions"] = serde_json::from_str(vs).unwrap();
            }
            let list = NetworkConfigList::from_bytes(raw.to_string().as_bytes()).unwrap();
            assert_eq!(list.cni_version, *want, "{raw}");
        }
    }

    #[test]
    fn list_parse_errors_use_libcni_wording() {
        let cases = [
            ("{", "error parsing configuration list: "),
            (
                r#"{"cniVersion": "1.0.0"}"#,
                "error parsing configuration list: no name",
            ),
            (
                r#"{"name": 7}"#,
                "error parsing configuration list: invalid name type float64",
            ),
            (
                r#"{"name": "n", "cniVersion": 1}"#,
                "error parsing configuration list: invalid cniVersion type float64",
            ),
            (
                r#"{"name": "n", "cniVersions": "1.0.0"}"#,
                "error parsing configuration list: invalid type for cniVersions: string",
            ),
            (
                r#"{"name": "n", "cniVersions": [1]}"#,
                "error parsing configuration list: invalid type for cniVersions index 0: float64",
            ),
            (
                r#"{"name": "n", "cniVersions": ["x"]}"#,
                "error parsing configuration list: invalid cniVersions entry x at index 0: failed to convert major",
            ),
            (
                r#"{"name": "n", "disableCheck": "yes", "plugins": [{"type": "t"}]}"#,
                "error parsing configuration list: invalid value \"yes\" for disableCheck",
            ),
            (
                r#"{"name": "n", "disableGC": 1, "plugins": [{"type": "t"}]}"#,
                "error parsing configuration list: invalid type float64 for disableGC",
            ),
            (
                r#"{"name": "n", "loadOnlyInlinedPlugins": true}"#,
                "error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key",
            ),
            (
                r#"{"name": "n", "plugins": {}}"#,
                "error parsing configuration list: invalid 'plugins' type map[string]interface {}",
            ),
            (
                r#"{"name": "n", "plugins": []}"#,
                "error parsing configuration list: no plugins in list",
            ),
            (
                r#"{"name": "n", "plugins": [{"name": "x"}]}"#,
                "failed to parse plugin config 0: error parsing configuration: missing 'type'",
            ),
            (
                r#"{"name": "n", "plugins": [{"type": "a"}, {"type": "b", "capabilities": {"mac": "yes"}}]}"#,
                "failed to parse plugin config 1: error parsing configuration: capabilities.mac: expected a boolean, found string",
            ),
        ];
        for (text, want) in cases {
            let got = err_text(NetworkConfigList::from_bytes(text.as_bytes()));
            assert!(got.starts_with(want), "{text}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn flags_accept_booleans_and_strings_in_any_case() {
        let text = r#"{"name": "n", "disableCheck": "TRUE", "disableGC": true,
            "loadOnlyInlinedPlugins": "False", "plugins": [{"type": "t", "Capabilities": {"mac": true}, "name": "p1"}]}"#;
        let list = NetworkConfigList::from_bytes(text.as_bytes()).unwrap();
        assert!(list.disable_check && list.disable_gc && !list.load_only_inlined_plugins);
        assert!(
            list.plugins[0].capabilities["mac"],
            "Go matches keys case-insensitively"
        );
        assert_eq!(list.plugins[0].description(), r#"type="t" name="p1""#);
        assert_eq!(
            list.bytes,
            text.as_bytes(),
            "the file's own bytes are kept for the cache"
        );
    }

    #[test]
    fn loading_takes_the_first_sorted_conflist_with_the_name() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write(
            d,
            "20-b.conflist",
            r#"{"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "second"}]}"#,
        );
        write(
            d,
            "10-a.conflist",
            r#"{"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "first"}]}"#,
        );
        write(
            d,
            "05-other.conflist",
            r#"{"name": "other", "plugins": [{"type": "x"}]}"#,
        );
        // Not a config: wrong extension, or a directory with a matching name.
        write(
            d,
            "00-net.conflist.bak",
            r#"{"name": "net", "plugins": [{"type": "bak"}]}"#,
        );
        fs::create_dir(d.join("01.conflist")).unwrap();
        // A legacy .conf with the same name loses against any conflist.
        write(d, "00-net.conf", r#"{"name": "net", "type": "legacy"}"#);
        let list = load_network_conf(d, "net").unwrap();
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0].plugin_type, "first");
    }

    #[test]
    fn plugins_from_the_network_directory_are_appended_unless_inlined_only() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write(
            d,
            "10.conflist",
            r#"{"name": "net", "cniVersion": "1.1.0", "plugins": [{"type": "a"}]}"#,
        );
        write(d, "net/2.conf", r#"{"type": "c"}"#);
        write(d, "net/1.conf", r#"{"type": "b"}"#);
        write(d, "net/3.json", r#"{"type": "ignored"}"#);
        let types = |list: &NetworkConfigList| -> Vec<String> {
            list.plugins.iter().map(|p| p.plugin_type.clone()).collect()
        };
        assert_eq!(
            types(&load_network_conf(d, "net").unwrap()),
            ["a", "b", "c"]
        );

        write(
            d,
            "10.conflist",
            r#"{"name": "net", "loadOnlyInlinedPlugins": "true", "plugins": [{"type": "a"}]}"#,
        );
        assert_eq!(types(&load_network_conf(d, "net").unwrap()), ["a"]);

        // A list may have no inline plugins at all when the directory supplies them.
        write(d, "10.conflist", r#"{"name": "net"}"#);
        assert_eq!(types(&load_network_conf(d, "net").unwrap()), ["b", "c"]);
        fs::remove_dir_all(d.join("net")).unwrap();
        assert_eq!(
            err_text(load_network_conf(d, "net")),
            "no plugin configs found"
        );
    }

    #[test]
    fn a_malformed_earlier_file_breaks_loading_as_in_libcni() {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "10-bad.conflist", "{not json");
        write(
            dir.path(),
            "20-good.conflist",
            r#"{"name": "net", "plugins": [{"type": "a"}]}"#,
        );
        let err = err_text(load_network_conf(dir.path(), "net"));
        assert!(
            err.starts_with("error parsing configuration list: "),
            "{err}"
        );
    }

    #[test]
    fn legacy_single_plugin_files_become_a_one_element_list() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        write(d, "10-other.json", r#"{"name": "other", "type": "x"}"#);
        write(
            d,
            "20-net.conf",
            r#"{"cniVersion": "0.4.0", "name": "net", "type": "bridge", "bridge": "br<0>"}"#,
        );
        let list = load_network_conf(d, "net").unwrap();
        assert_eq!(list.name, "net");
        assert_eq!(list.cni_version, "0.4.0");
        assert_eq!(list.plugins[0].plugin_type, "bridge");
        // libcni re-marshals the wrapper: compact, sorted, Go-escaped.
        assert_eq!(
            String::from_utf8(list.bytes).unwrap(),
            r#"{"cniVersion":"0.4.0","name":"net","plugins":[{"bridge":"br\u003c0\u003e","cniVersion":"0.4.0","name":"net","type":"bridge"}]}"#
        );
    }

    #[test]
    fn not_found_messages() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        assert_eq!(
            err_text(load_network_conf(d, "net")),
            format!("no net configurations found in {}", d.display())
        );
        // Missing directory: the same as an empty one.
        assert_eq!(
            err_text(load_network_conf(&d.join("absent"), "net")),
            format!(
                "no net configurations found in {}",
                d.join("absent").display()
            )
        );
        write(
            d,
            "10.conflist",
            r#"{"name": "other", "plugins": [{"type": "a"}]}"#,
        );
        assert_eq!(
            err_text(load_network_conf(d, "net")),
            format!("no net configuration with name \"net\" in {}", d.display())
        );
        write(d, "10.conf", r#"{"name": "other2", "type": "a"}"#);
        assert_eq!(
            err_text(load_network_conf(d, "net")),
            format!("no net configuration with name \"net\" in {}", d.display())
        );
    }
}
