//! libcni's result cache, byte for byte (CNI:libcni/api.go `cachedInfo`, docs/spec.md#result-cache):
//! one file per attachment at `<cache dir>/results/<network>-<container id>-<ifname>`, the
//! directory mode 0700 and the file 0600, holding
//!
//! ```text
//! {"kind":"cniCacheV1","containerId":…,"config":<list bytes, base64>,"ifName":…,
//!  "networkName":…,"netns":…,"cniArgs":[["K","V"]],"capabilityArgs":{…},"result":{…}}
//! ```
//!
//! in that key order (Go struct order), compact, with `netns`, `cniArgs`, `capabilityArgs`
//! and `result` left out when empty, and maps printed with sorted keys. Other runtimes on
//! the node (containerd, CRI-O, podman with CNI, the Go cnitool) read and write the same
//! files, so the format is a contract, not a detail.
//!
//! DEL needs the cached result as `prevResult`, CHECK compares against it, GC lists the
//! files to find attachments to clean up. A file that cannot be parsed must never block a
//! DEL (cni #1055): readers here report it, and the runtime decides.

use crate::base64;
use cni::json;
use cni::{CniResult, Version};
use serde_json::{Map, Value};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The cache directory libcni uses unless told otherwise (`libcni.CacheDir`).
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// The `kind` of every cache file libcni writes since v0.8.
pub const CACHE_KIND: &str = "cniCacheV1";

/// One cache file's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedInfo {
    /// `containerId`.
    pub container_id: String,
    /// `config`: the network list's bytes (stored base64).
    pub config: Vec<u8>,
    /// `ifName`.
    pub ifname: String,
    /// `networkName`.
    pub network_name: String,
    /// `netns` (empty = absent).
    pub netns: String,
    /// `cniArgs`: the `CNI_ARGS` pairs, in order.
    pub cni_args: Vec<(String, String)>,
    /// `capabilityArgs` (empty = absent).
    pub capability_args: Map<String, Value>,
    /// `result`: the final ADD result as JSON (in the version the last plugin returned).
    pub result: Option<Map<String, Value>>,
}

impl CachedInfo {
    /// The file's bytes, exactly as libcni's `json.Marshal(&cachedInfo)` writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let string = |s: &str| json::to_go_string(&Value::from(s));
        let mut out = String::with_capacity(512 + self.config.len() * 4 / 3);
        out.push_str("{\"kind\":");
        out.push_str(&string(CACHE_KIND));
        out.push_str(",\"containerId\":");
        out.push_str(&string(&self.container_id));
        out.push_str(",\"config\":");
        out.push_str(&string(&base64::encode(&self.config)));
        out.push_str(",\"ifName\":");
        out.push_str(&string(&self.ifname));
        out.push_str(",\"networkName\":");
        out.push_str(&string(&self.network_name));
        // `omitempty` on each of these in the Go struct.
        if !self.netns.is_empty() {
            out.push_str(",\"netns\":");
            out.push_str(&string(&self.netns));
        }
        if !self.cni_args.is_empty() {
            let pairs: Vec<Value> = self
                .cni_args
                .iter()
                .map(|(k, v)| Value::from(vec![k.as_str(), v.as_str()]))
                .collect();
            out.push_str(",\"cniArgs\":");
            out.push_str(&json::to_go_string(&Value::Array(pairs)));
        }
        if !self.capability_args.is_empty() {
            out.push_str(",\"capabilityArgs\":");
            out.push_str(&json::to_go_string(&Value::Object(
                self.capability_args.clone(),
            )));
        }
        if let Some(result) = self.result.as_ref().filter(|r| !r.is_empty()) {
            out.push_str(",\"result\":");
            out.push_str(&json::to_go_string(&Value::Object(result.clone())));
        }
        out.push('}');
        out.into_bytes()
    }

    /// Parses a cache file. `Err` says why it is not a `cniCacheV1` file (not JSON, a
    /// field of the wrong type, another `kind`); the caller may then try the legacy format.
    pub fn from_bytes(bytes: &[u8]) -> Result<CachedInfo, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(map) = value else {
            return Err("not a JSON object".into());
        };
        let field = |key: &str| crate::config::go_field(&map, key).filter(|v| !v.is_null());
        let string = |key: &str| -> Result<String, String> {
            match field(key) {
                None => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{key}: expected a string")),
            }
        };
        let kind = string("kind")?;
        if kind != CACHE_KIND {
            return Err(format!("wrong kind: {kind:?}"));
        }
        let config = match field("config") {
            None => Vec::new(),
            Some(Value::String(s)) => {
                base64::decode(s).ok_or_else(|| "config: illegal base64 data".to_owned())?
            }
            Some(_) => return Err("config: expected a base64 string".into()),
        };
        let cni_args = match field("cniArgs") {
            None => Vec::new(),
            Some(Value::Array(pairs)) => pairs
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
                    _ => Err("cniArgs: expected [key, value] pairs".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("cniArgs: expected an array".into()),
        };
        let object = |key: &str| -> Result<Option<Map<String, Value>>, String> {
            match field(key) {
                None => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m.clone())),
                Some(_) => Err(format!("{key}: expected an object")),
            }
        };
        Ok(CachedInfo {
            container_id: string("containerId")?,
            config,
            ifname: string("ifName")?,
            network_name: string("networkName")?,
            netns: string("netns")?,
            cni_args,
            capability_args: object("capabilityArgs")?.unwrap_or_default(),
            result: object("result")?,
        })
    }
}

/// The result cache under one cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache under `dir` (files go to `dir/results/`).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The directory holding the files: `<cache dir>/results`.
    pub fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// `<cache dir>/results/<network>-<container id>-<ifname>`; all three must be
    /// non-empty, as libcni requires.
    pub fn file_path(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> io::Result<PathBuf> {
        if network.is_empty() || container_id.is_empty() || ifname.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cache file path requires network name ({network:?}), container ID ({container_id:?}), and interface name ({ifname:?})"
                ),
            ));
        }
        Ok(self
            .results_dir()
            .join(format!("{network}-{container_id}-{ifname}")))
    }

    /// Writes `info` to its file (directory 0700, file 0600).
    ///
    /// libcni writes the file in place; we write a temporary file and rename it over, so a
    /// crash mid-write cannot leave a truncated file that later breaks CHECK (cni #1055).
    /// The temporary name starts with `.` and is gone after the rename; another runtime
    /// listing the directory at that instant skips it as unparsable at worst.
    pub fn write(&self, info: &CachedInfo) -> io::Result<()> {
        let path = self.file_path(&info.network_name, &info.container_id, &info.ifname)?;
        let dir = self.results_dir();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&info.to_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Removes an attachment's file; a missing file is not an error.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> io::Result<()> {
        let Ok(path) = self.file_path(network, container_id, ifname) else {
            // No such file can exist (libcni ignores this too).
            return Ok(());
        };
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The cached result of an attachment converted to `config_version` (libcni
    /// `getCachedResult`): `Ok(None)` when there is no readable file; `Err` with the reason
    /// when the file exists but its result cannot be used. Files from before `cniCacheV1`
    /// (a bare result) are still read.
    pub fn read_result(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        config_version: &str,
    ) -> Result<Option<Value>, String> {
        let path = self
            .file_path(network, container_id, ifname)
            .map_err(|e| e.to_string())?;
        let Ok(bytes) = fs::read(&path) else {
            // libcni: "the cached result may not exist on-disk".
            return Ok(None);
        };
        let raw = match CachedInfo::from_bytes(&bytes) {
            Ok(info) => Value::Object(info.result.ok_or("the cache file holds no result")?),
            // The legacy format: the file is the result itself.
            Err(_) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("cannot parse the cached result: {e}"))?,
        };
        // A result without cniVersion is 0.1.0, as libcni's `create.CreateFromBytes` reads it.
        let result = CniResult::from_prev_result(&raw, Version::V0_1_0)
            .map_err(|e| format!("cannot parse the cached result: {}", e.msg()))?;
        let target = parse_result_version(config_version).map_err(|e| {
            format!("failed to convert cached result to config version {config_version:?}: {e}")
        })?;
        result.to_value(target).map(Some).map_err(|e| {
            format!(
                "failed to convert cached result to config version {config_version:?}: {}",
                e.msg()
            )
        })
    }

    /// Every well-formed `cniCacheV1` file, in file-name order, skipping unreadable ones and
    /// those without an ifname or network (libcni `GetCachedAttachments("")`). A missing
    /// directory means no attachments.
    pub fn attachments(&self) -> io::Result<Vec<CachedInfo>> {
        let dir = self.results_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        paths.sort_by(|a, b| {
            a.as_os_str()
                .as_encoded_bytes()
                .cmp(b.as_os_str().as_encoded_bytes())
        });
        Ok(paths
            .iter()
            .filter_map(|path| read_attachment(path))
            .collect())
    }
}

fn read_attachment(path: &Path) -> Option<CachedInfo> {
    let info = CachedInfo::from_bytes(&fs::read(path).ok()?).ok()?;
    (!info.ifname.is_empty() && !info.network_name.is_empty()).then_some(info)
}

/// A config's `cniVersion` as the version to shape results in: empty means 0.1.0 (spec).
pub fn parse_result_version(version: &str) -> Result<Version, String> {
    if version.is_empty() {
        return Ok(Version::V0_1_0);
    }
    version.parse().map_err(|e: cni::Error| match e.details() {
        Some(details) => format!("{}: {details}", e.msg()),
        None => e.msg(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;
    use tempfile::TempDir;

    /// The conflist the fixtures were made from; its base64 is in [`FIXTURE`].
    const CONFIG: &str =
        "{\"cniVersion\":\"1.0.0\",\"name\":\"demo\",\"plugins\":[{\"type\":\"loopback\"}]}\n";

    /// A cache file as libcni writes it for `CONFIG`, built by hand from the Go struct
    /// (CNI:libcni/api.go `cachedInfo`: field order kind, containerId, config, ifName,
    /// networkName, netns, cniArgs, capabilityArgs, result; `[]byte` as standard base64;
    /// maps with sorted keys; compact; HTML characters escaped). The base64 was checked
    /// with `printf '%s\n' '<CONFIG>' | base64 -w0`.
    const FIXTURE: &str = concat!(
        r#"{"kind":"cniCacheV1","containerId":"cnitool-4acf487154af9777be71","#,
        r#""config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoiZGVtbyIsInBsdWdpbnMiOlt7InR5cGUiOiJsb29wYmFjayJ9XX0K","#,
        r#""ifName":"eth0","networkName":"demo","netns":"/var/run/netns/x","#,
        r#""cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","a\u0026b"]],"#,
        r#""capabilityArgs":{"ips":["10.1.2.3/24"],"mac":"0a:58:0a:01:02:03"},"#,
        r#""result":{"cniVersion":"1.0.0","interfaces":[{"mac":"0a:58:0a:01:02:03","name":"eth0","sandbox":"/var/run/netns/x"}],"#,
        r#""ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}}"#
    );

    fn fixture_info() -> CachedInfo {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:02:03", "sandbox": "/var/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
        });
        CachedInfo {
            container_id: "cnitool-4acf487154af9777be71".into(),
            config: CONFIG.as_bytes().to_vec(),
            ifname: "eth0".into(),
            network_name: "demo".into(),
            netns: "/var/run/netns/x".into(),
            cni_args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), "a&b".into()),
            ],
            capability_args: json!({"mac": "0a:58:0a:01:02:03", "ips": ["10.1.2.3/24"]})
                .as_object()
                .unwrap()
                .clone(),
            result: result.as_object().cloned(),
        }
    }

    #[test]
    fn writes_libcnis_bytes_and_reads_them_back() {
        let info = fixture_info();
        assert_eq!(String::from_utf8(info.to_bytes()).unwrap(), FIXTURE);
        assert_eq!(CachedInfo::from_bytes(FIXTURE.as_bytes()).unwrap(), info);
    }

    #[test]
    fn empty_optional_fields_are_left_out() {
        let info = CachedInfo {
            container_id: "c1".into(),
            config: b"{}".to_vec(),
            ifname: "eth0".into(),
            network_name: "n".into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: None,
        };
        assert_eq!(
            String::from_utf8(info.to_bytes()).unwrap(),
            r#"{"kind":"cniCacheV1","containerId":"c1","config":"e30=","ifName":"eth0","networkName":"n"}"#
        );
    }

    #[test]
    fn write_sets_libcnis_modes_and_path() {
        let tmp = TempDir::new().unwrap();
        let cache = Cache::new(tmp.path().join("cni"));
        let info = fixture_info();
        cache.write(&info).unwrap();
        let path = tmp
            .path()
            .join("cni/results/demo-cnitool-4acf487154af9777be71-eth0");
        assert_eq!(fs::read_to_string(&path).unwrap(), FIXTURE);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("cni/results")), 0o700);
        assert_eq!(
            fs::read_dir(cache.results_dir()).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert_eq!(cache.attachments().unwrap(), vec![info]);
        cache
            .remove("demo", "cnitool-4acf487154af9777be71", "eth0")
            .unwrap();
        assert!(!path.exists());
        // Removing again, or with an empty part, is fine.
        cache
            .remove("demo", "cnitool-4acf487154af9777be71", "eth0")
            .unwrap();
        cache.remove("", "c", "eth0").unwrap();
        assert!(cache.file_path("n", "", "eth0").is_err());
    }

    #[test]
    fn read_result_converts_to_the_config_version() {
        let tmp = TempDir::new().unwrap();
        let cache = Cache::new(tmp.path());
        cache.write(&fixture_info()).unwrap();
        let read =
            |version| cache.read_result("demo", "cnitool-4acf487154af9777be71", "eth0", version);
        let same = read("1.0.0").unwrap().unwrap();
        assert_eq!(same["ips"][0]["address"], "10.1.2.3/24");
        assert_eq!(same["cniVersion"], "1.0.0");
        let older = read("0.4.0").unwrap().unwrap();
        assert_eq!(older["cniVersion"], "0.4.0");
        assert_eq!(older["ips"][0]["version"], "4");
        let err = read("7.0.0").unwrap_err();
        assert!(
            err.starts_with("failed to convert cached result to config version \"7.0.0\""),
            "{err}"
        );
        // No file: no result, no error.
        assert_eq!(
            cache.read_result("demo", "other", "eth0", "1.0.0"),
            Ok(None)
        );
    }

    #[test]
    fn legacy_and_corrupt_files() {
        let tmp = TempDir::new().unwrap();
        let cache = Cache::new(tmp.path());
        fs::create_dir_all(cache.results_dir()).unwrap();
        let path = cache.file_path("n", "c", "eth0").unwrap();
        // Before cniCacheV1, the file was the bare result.
        fs::write(
            &path,
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}"#,
        )
        .unwrap();
        let legacy = cache
            .read_result("n", "c", "eth0", "1.0.0")
            .unwrap()
            .unwrap();
        assert_eq!(legacy["ips"][0]["address"], "10.0.0.2/24");
        assert!(
            cache.attachments().unwrap().is_empty(),
            "legacy files are not attachments"
        );
        for corrupt in [
            "",
            "{",
            "\0\0\0",
            r#"{"kind":"cniCacheV1","containerId":"c","ifName":"eth0","networkName":"n"}"#,
        ] {
            fs::write(&path, corrupt).unwrap();
            assert!(
                cache.read_result("n", "c", "eth0", "1.0.0").is_err(),
                "{corrupt:?}"
            );
        }
        // A file whose config is not base64 is not a cniCacheV1 file.
        assert!(CachedInfo::from_bytes(br#"{"kind":"cniCacheV1","config":"%%%"}"#).is_err());
        assert!(CachedInfo::from_bytes(br#"{"kind":"other"}"#).is_err());
    }

    #[test]
    fn attachments_skip_what_libcni_skips() {
        let tmp = TempDir::new().unwrap();
        let cache = Cache::new(tmp.path());
        let mut a = fixture_info();
        a.network_name = "b-net".into();
        cache.write(&a).unwrap();
        let mut b = fixture_info();
        b.network_name = "a-net".into();
        cache.write(&b).unwrap();
        let dir = cache.results_dir();
        fs::write(dir.join("garbage"), "{").unwrap();
        fs::write(
            dir.join("noif"),
            r#"{"kind":"cniCacheV1","networkName":"n"}"#,
        )
        .unwrap();
        fs::create_dir(dir.join("subdir")).unwrap();
        let names: Vec<String> = cache
            .attachments()
            .unwrap()
            .into_iter()
            .map(|i| i.network_name)
            .collect();
        assert_eq!(names, ["a-net", "b-net"], "sorted by file name");
    }
}
