//! A blocking face on the async etcd client: a tokio current-thread runtime per process
//! (a plugin does one request at a time), every request bounded by the configured timeouts
//! so an unreachable etcd fails the verb in time instead of hanging the runtime.

use crate::config::EtcdConfig;
use crate::error::{Error, Result};
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, KeyValue, TlsOptions, Txn, TxnOp,
    TxnOpResponse, TxnResponse,
};
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

/// etcd's default `--max-txn-ops`: the most operations one transaction may hold.
pub const MAX_TXN_OPS: usize = 128;

/// A connected client.
pub struct Etcd {
    runtime: tokio::runtime::Runtime,
    client: Client,
    endpoints: String,
    dial_timeout: Duration,
    request_timeout: Duration,
    /// Whether a request has been answered: until then, requests may also spend the dial
    /// timeout connecting.
    connected: Cell<bool>,
}

impl Etcd {
    /// Sets up the client; the connection itself is made by the first request.
    pub fn connect(config: &EtcdConfig) -> Result<Etcd> {
        let endpoints = config.endpoint_list();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Unavailable {
                endpoints: endpoints.clone(),
                during: "starting the client runtime".into(),
                reason: e.to_string(),
            })?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.dial_timeout)
            .with_timeout(config.request_timeout);
        if let Some(tls) = tls_options(config)? {
            options = options.with_tls(tls);
        }
        let client = runtime
            .block_on(async {
                tokio::time::timeout(
                    config.dial_timeout,
                    Client::connect(&config.endpoints, Some(options)),
                )
                .await
            })
            .map_err(|_| Error::Unavailable {
                endpoints: endpoints.clone(),
                during: "connecting".into(),
                reason: format!("no answer within {} ms", config.dial_timeout.as_millis()),
            })?
            .map_err(|e| match e {
                // A malformed endpoint or TLS with an http:// endpoint: the configuration.
                etcd_client::Error::InvalidArgs(_)
                | etcd_client::Error::InvalidUri(_)
                | etcd_client::Error::TransportError(_) => Error::Config {
                    field: "ipam.etcd".into(),
                    reason: e.to_string(),
                },
                other => Error::Unavailable {
                    endpoints: endpoints.clone(),
                    during: "connecting".into(),
                    reason: other.to_string(),
                },
            })?;
        Ok(Etcd {
            runtime,
            client,
            endpoints,
            dial_timeout: config.dial_timeout,
            request_timeout: config.request_timeout,
            connected: Cell::new(false),
        })
    }

    /// Runs one request within the timeout; `during` names it in errors.
    fn run<T>(
        &self,
        during: &str,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        let limit = if self.connected.get() {
            self.request_timeout
        } else {
            self.dial_timeout + self.request_timeout
        };
        let unavailable = |reason: String| Error::Unavailable {
            endpoints: self.endpoints.clone(),
            during: during.into(),
            reason,
        };
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(limit, request).await })
            .map_err(|_| unavailable(format!("no answer within {} ms", limit.as_millis())))?
            .map_err(|e| unavailable(e.to_string()))?;
        self.connected.set(true);
        Ok(answer)
    }

    /// The key, if it exists.
    pub fn get(&self, key: &str, during: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let mut response = self.run(during, kv.get(key, None))?;
        Ok(response.take_kvs().into_iter().next())
    }

    /// Every key under `prefix`, in key order.
    pub fn get_prefix(&self, prefix: &str, during: &str) -> Result<Vec<KeyValue>> {
        let mut kv = self.client.kv_client();
        let mut response = self.run(
            during,
            kv.get(prefix, Some(GetOptions::new().with_prefix())),
        )?;
        Ok(response.take_kvs())
    }

    /// Each key of `keys`, if it exists, read in as few transactions as etcd allows.
    /// `keys_only` leaves the values out (revisions are still there).
    pub fn get_many(
        &self,
        keys: &[String],
        keys_only: bool,
        during: &str,
    ) -> Result<Vec<Option<KeyValue>>> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|key| {
                    let options = keys_only.then(|| GetOptions::new().with_keys_only());
                    TxnOp::get(key.as_str(), options)
                })
                .collect();
            let response = self.txn(Txn::new().and_then(ops), during)?;
            found.extend(response.op_responses().into_iter().map(first_kv));
        }
        Ok(found)
    }

    /// Runs a transaction.
    pub fn txn(&self, txn: Txn, during: &str) -> Result<TxnResponse> {
        let mut kv = self.client.kv_client();
        self.run(during, kv.txn(txn))
    }
}

/// The key a `get` operation of a transaction found.
pub fn first_kv(response: TxnOpResponse) -> Option<KeyValue> {
    match response {
        TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
        _ => None,
    }
}

/// TLS settings when `ca` or `cert`/`key` is configured; the files are read here.
fn tls_options(config: &EtcdConfig) -> Result<Option<TlsOptions>> {
    if config.ca.is_none() && config.identity.is_none() {
        return Ok(None);
    }
    let read = |field: &'static str, path: &str| {
        std::fs::read(path).map_err(|source| Error::TlsFile {
            field,
            path: path.into(),
            source,
        })
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &config.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read("ipam.etcd.ca", ca)?));
    }
    if let Some((cert, key)) = &config.identity {
        tls = tls.identity(Identity::from_pem(
            read("ipam.etcd.cert", cert)?,
            read("ipam.etcd.key", key)?,
        ));
    }
    Ok(Some(tls))
}
