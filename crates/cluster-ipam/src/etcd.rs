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
    /// Whether the client speaks TLS: only then is a failure read as a TLS refusal.
    tls: bool,
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
        let tls = tls_options(config)?;
        let uses_tls = tls.is_some();
        if let Some(tls) = tls {
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
            tls: uses_tls,
            connected: Cell::new(false),
        })
    }

    /// Runs one request within the timeout; `during` names it in errors. The request is
    /// sent again while etcd or the connection answers "not now" (a leader election, a
    /// member just gone: the balancer then tries another) and time is left. Sending a write
    /// twice is harmless here: every write is a transaction whose compares fail if the
    /// first one was applied after all (an ADD then reports its attachment as allocated,
    /// and the runtime's DEL releases it).
    fn run<T, Fut>(&self, during: &str, mut request: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
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
        let deadline = tokio::time::Instant::now() + limit;
        let answer = self.runtime.block_on(async {
            let mut pause = Duration::from_millis(20);
            loop {
                match tokio::time::timeout_at(deadline, request()).await {
                    Err(_) => {
                        return Err(unavailable(format!(
                            "no answer within {} ms",
                            limit.as_millis()
                        )));
                    }
                    Ok(Ok(answer)) => return Ok(answer),
                    Ok(Err(e)) => {
                        if let Some(refused) = self.tls_refused(&e, during) {
                            return Err(refused);
                        }
                        if !transient(&e) || tokio::time::Instant::now() + pause >= deadline {
                            return Err(unavailable(e.to_string()));
                        }
                        log::debug!("etcd: {e}; retrying in {} ms", pause.as_millis());
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                }
            }
        })?;
        self.connected.set(true);
        Ok(answer)
    }

    /// `error` as a refused TLS handshake, if the client speaks TLS and it is one.
    fn tls_refused(&self, error: &etcd_client::Error, during: &str) -> Option<Error> {
        if !self.tls {
            return None;
        }
        let (reason, hint) = tls_refusal(error)?;
        Some(Error::TlsRefused {
            endpoints: self.endpoints.clone(),
            during: during.into(),
            reason,
            hint,
        })
    }

    /// The key, if it exists.
    pub fn get(&self, key: &str, during: &str) -> Result<Option<KeyValue>> {
        let kv = self.client.kv_client();
        let mut response = self.run(during, || {
            let mut kv = kv.clone();
            async move { kv.get(key, None).await }
        })?;
        Ok(response.take_kvs().into_iter().next())
    }

    /// Every key under `prefix`, in key order.
    pub fn get_prefix(&self, prefix: &str, read: Read, during: &str) -> Result<Vec<KeyValue>> {
        let kv = self.client.kv_client();
        let options = read.options(GetOptions::new().with_prefix());
        let mut response = self.run(during, || {
            let mut kv = kv.clone();
            let options = options.clone();
            async move { kv.get(prefix, Some(options)).await }
        })?;
        Ok(response.take_kvs())
    }

    /// The answers to read-only transaction operations, in order, sent in as few
    /// transactions as etcd allows.
    pub fn read_all(&self, ops: Vec<TxnOp>, during: &str) -> Result<Vec<TxnOpResponse>> {
        let mut answers = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(MAX_TXN_OPS) {
            let kv = self.client.kv_client();
            let response = self.run(during, || {
                let mut kv = kv.clone();
                let reads = Txn::new().and_then(chunk.to_vec());
                async move { kv.txn(reads).await }
            })?;
            answers.extend(response.op_responses());
        }
        Ok(answers)
    }

    /// Runs a transaction.
    pub fn txn(&self, txn: Txn, during: &str) -> Result<TxnResponse> {
        let kv = self.client.kv_client();
        self.run(during, || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
    }
}

/// How current a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// What a quorum agrees on now (DEL, CHECK, GC: a stale answer could miss a key).
    Linearizable,
    /// Whatever the member that answers has applied: no round through the leader, and
    /// served during an election. For ADD's choices only: a stale answer can only make a
    /// compare of the one write fail, and the ADD chooses again.
    Serializable,
}

impl Read {
    fn options(self, options: GetOptions) -> GetOptions {
        match self {
            Read::Linearizable => options,
            Read::Serializable => options.with_serializable(),
        }
    }
}

/// etcd or the connection said "not now": no leader yet, the member is gone or starting.
fn transient(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Why the TLS handshake failed, with which settings to check, if it did: retrying with
/// the same files cannot succeed.
fn tls_refusal(error: &etcd_client::Error) -> Option<(String, &'static str)> {
    let inner: &(dyn std::error::Error + 'static) = match error {
        etcd_client::Error::GRpcStatus(status) => status,
        etcd_client::Error::TransportError(transport) => transport,
        etcd_client::Error::IoError(io) => io,
        _ => return None,
    };
    Some(match find_tls_error(inner)? {
        TlsError::Typed(tls @ rustls::Error::InvalidCertificate(_)) => (
            tls.to_string(),
            "this client refused etcd's certificate: ipam.etcd.ca must be the CA that signed \
             it, and it must name the endpoint's host",
        ),
        TlsError::Typed(tls) => (tls.to_string(), CHECK_TLS_FILES),
        TlsError::Flattened(io) => (io.to_string(), CHECK_TLS_FILES),
    })
}

const CHECK_TLS_FILES: &str = "check ipam.etcd.ca, ipam.etcd.cert and ipam.etcd.key against \
     etcd's --trusted-ca-file and --client-cert-auth (etcd refuses a client without a \
     certificate its CA signed)";

/// A TLS failure found in an error chain.
enum TlsError<'a> {
    /// rustls's own error (a failed connect keeps it).
    Typed(&'a rustls::Error),
    /// An I/O error of kind `InvalidData`, which is how tokio-rustls reports a TLS failure;
    /// the HTTP/2 layer keeps only its kind and text when a request fails on it (etcd's
    /// "bad certificate" alert after the handshake arrives so).
    Flattened(&'a std::io::Error),
}

/// The TLS failure in `error`'s chain of sources. I/O errors are opened with `get_ref`:
/// their `source` skips the error they carry.
fn find_tls_error<'a>(mut error: &'a (dyn std::error::Error + 'static)) -> Option<TlsError<'a>> {
    loop {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(TlsError::Typed(tls));
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(tls) => Some(TlsError::Typed(tls)),
                None if io.kind() == std::io::ErrorKind::InvalidData => {
                    Some(TlsError::Flattened(io))
                }
                None => None,
            };
        }
        error = error.source()?;
    }
}

/// A transaction operation that reads whether `key` exists (no value: the revisions are
/// there).
pub fn presence(key: &str, read: Read) -> TxnOp {
    TxnOp::get(key, Some(read.options(GetOptions::new().with_keys_only())))
}

/// A transaction operation that reads which keys exist in `[start, end)` (no values).
pub fn span_presence(start: &str, end: &str, read: Read) -> TxnOp {
    let options = GetOptions::new().with_range(end).with_keys_only();
    TxnOp::get(start, Some(read.options(options)))
}

/// A transaction operation that reads every key under `prefix`.
pub fn prefix_get(prefix: &str) -> TxnOp {
    TxnOp::get(prefix, Some(GetOptions::new().with_prefix()))
}

/// The keys a `get` operation of a transaction found.
pub fn kvs(response: TxnOpResponse) -> Vec<KeyValue> {
    match response {
        TxnOpResponse::Get(mut get) => get.take_kvs(),
        _ => Vec::new(),
    }
}

/// The key a `get` operation of a transaction found.
pub fn first_kv(response: TxnOpResponse) -> Option<KeyValue> {
    kvs(response).into_iter().next()
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
