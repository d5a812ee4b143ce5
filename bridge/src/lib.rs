//! mailbox_zenoh_bridge: a narrow C ABI over the `zenoh` crate.
//!
//! What it is for: the Mailbox C++ programs (`mailboxd`, `mailbox`) reach Zenoh
//! only through these functions. The surface is deliberately small: open and
//! close a session from a JSON5 config; declare a queryable whose callback
//! receives an owned query handle; read a query's key, parameters, payload,
//! encoding and attachment; reply, reply with an error and finish a query from
//! any thread; put; declare a subscriber; and get with a timeout and a reply
//! callback.
//!
//! Threads: every function may be called from any thread. Callbacks run on
//! Zenoh's own threads; they must not block and must not unwind (C++ callers
//! mark them `noexcept`).
//!
//! Ownership: handles returned as `*mut T` are owned by the caller and are
//! released by the matching close/undeclare/drop function, exactly once.
//! `MbzBytes` arguments are borrowed for the duration of the call only.
//! `MbzBytes` values returned from query accessors borrow from the query
//! handle and are valid until `mbz_query_drop`. Views handed to sample and
//! reply callbacks are valid only during the callback.
//!
//! Panics: no panic crosses this ABI. Every entry point and every callback
//! trampoline runs under `catch_unwind`; a caught panic becomes
//! `MBZ_ERR_PANIC` (or a null handle with an error message).
//!
//! The C header `include/mailbox_bridge.h` is generated from this file by
//! cbindgen (see `tools/header-check`); a test fails if the two drift.

#![allow(clippy::missing_safety_doc)]

use std::ffi::c_void;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zenoh::bytes::{Encoding, ZBytes};
use zenoh::key_expr::KeyExpr;
use zenoh::qos::CongestionControl;
use zenoh::liveliness::LivelinessToken;
use zenoh::sample::SampleKind;
use zenoh::pubsub::Subscriber;
use zenoh::query::{ConsolidationMode, Query, QueryTarget, Queryable, Reply};
use zenoh::sample::Sample;
use zenoh::internal::runtime::{Runtime, RuntimeBuilder, ZRuntime};
use zenoh::config::WhatAmI;
use zenoh::{Config, Session, Wait};

/// Success.
pub const MBZ_OK: i32 = 0;
/// An argument was invalid (null handle, bad UTF-8, bad key expression, bad config).
pub const MBZ_ERR_INVALID: i32 = -1;
/// Zenoh refused the operation.
pub const MBZ_ERR_ZENOH: i32 = -2;
/// A panic was caught inside the bridge; the operation did not complete.
pub const MBZ_ERR_PANIC: i32 = -3;

/// Query target: the best matching queryable (Zenoh's default).
pub const MBZ_TARGET_BEST_MATCHING: i32 = 0;
/// Query target: every matching queryable.
pub const MBZ_TARGET_ALL: i32 = 1;
/// Query target: every matching complete queryable.
pub const MBZ_TARGET_ALL_COMPLETE: i32 = 2;

/// Congestion control of a put: drop the publication when a transport
/// queue on its way is full (Zenoh's default for puts).
pub const MBZ_CONGESTION_DROP: i32 = 0;
/// Congestion control of a put: wait for room in every transport queue on
/// its way, so that the publication is not dropped.
pub const MBZ_CONGESTION_BLOCK: i32 = 1;

/// Consolidation: Zenoh's default (`Latest` unless the selector has a time range).
pub const MBZ_CONSOLIDATION_AUTO: i32 = 0;
/// Consolidation: none, every reply is delivered.
pub const MBZ_CONSOLIDATION_NONE: i32 = 1;
/// Consolidation: monotonic.
pub const MBZ_CONSOLIDATION_MONOTONIC: i32 = 2;
/// Consolidation: latest per key expression.
pub const MBZ_CONSOLIDATION_LATEST: i32 = 3;

/// A borrowed byte range. `data == NULL` means "absent" (distinct from empty).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MbzBytes {
    pub data: *const u8,
    pub len: usize,
}

/// A sample delivered to a subscriber callback; every view is valid only
/// during the callback. `attachment.data == NULL` when there is none.
/// `timestamp` is the sample's Zenoh timestamp as text (a router stamps a
/// publication once, so every subscriber sees the same one), or absent.
#[repr(C)]
pub struct MbzSample {
    pub key: MbzBytes,
    pub payload: MbzBytes,
    pub encoding: MbzBytes,
    pub attachment: MbzBytes,
    pub timestamp: MbzBytes,
}

/// A reply delivered to a get callback; every view is valid only during the
/// callback. For an error reply (`is_ok == false`) `key` and `attachment` are
/// absent.
#[repr(C)]
pub struct MbzReply {
    pub is_ok: bool,
    pub key: MbzBytes,
    pub payload: MbzBytes,
    pub encoding: MbzBytes,
    pub attachment: MbzBytes,
}

/// Options of `mbz_get`.
#[repr(C)]
pub struct MbzGetOptions {
    /// Query timeout in milliseconds; 0 means Zenoh's configured default.
    pub timeout_ms: u64,
    /// One of the `MBZ_TARGET_*` constants.
    pub target: i32,
    /// One of the `MBZ_CONSOLIDATION_*` constants.
    pub consolidation: i32,
}

/// An open Zenoh session. Owned by the caller; release with `mbz_session_close`.
pub struct MbzSession {
    session: Session,
    /// The runtime of a session opened with `mbz_session_open_deferred`: not
    /// started (no listener, no outgoing link) until `mbz_session_start`,
    /// and closed by `mbz_session_close` after the session.
    deferred_runtime: Option<Runtime>,
    started: AtomicBool,
}

/// A declared queryable. Owned by the caller; release with `mbz_undeclare_queryable`.
pub struct MbzQueryable {
    queryable: Queryable<()>,
    gate: Arc<CallbackGate>,
}

/// A declared subscriber. Owned by the caller; release with `mbz_undeclare_subscriber`.
pub struct MbzSubscriber {
    subscriber: Subscriber<()>,
    gate: Arc<CallbackGate>,
}

/// Lets an undeclaration wait until no callback into the caller is running,
/// so the caller may free its context as soon as undeclare returns.
#[derive(Default)]
struct CallbackGate {
    closed: AtomicBool,
    running: AtomicUsize,
}

impl CallbackGate {
    /// Runs `f` unless the gate is closed.
    fn pass<F: FnOnce()>(&self, f: F) {
        self.running.fetch_add(1, Ordering::SeqCst);
        if !self.closed.load(Ordering::SeqCst) {
            let _ = catch_unwind(AssertUnwindSafe(f));
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Closes the gate and waits for callbacks already inside to return.
    fn close_and_drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while self.running.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

/// A declared liveliness token: alive in the network while it exists.
/// Owned by the caller; release with `mbz_undeclare_liveliness_token`.
pub struct MbzLivelinessToken {
    token: LivelinessToken,
}

/// An incoming query, owned by whoever received it in the queryable callback.
/// The client sees the end of the reply stream when it is dropped with
/// `mbz_query_drop`. May be moved to and answered from any thread.
pub struct MbzQuery {
    query: Query,
    key: String,
    parameters: String,
    payload: Option<Vec<u8>>,
    encoding: Option<String>,
    attachment: Option<Vec<u8>>,
}

/// Called for each incoming query; the callee owns `query` and must pass it
/// to `mbz_query_drop` exactly once.
pub type MbzQueryCallback = Option<unsafe extern "C" fn(context: *mut c_void, query: *mut MbzQuery)>;
/// Called for each sample received by a subscriber.
pub type MbzSampleCallback = Option<unsafe extern "C" fn(context: *mut c_void, sample: *const MbzSample)>;
/// Called for each reply to a get.
pub type MbzReplyCallback = Option<unsafe extern "C" fn(context: *mut c_void, reply: *const MbzReply)>;
/// Called when a liveliness token matching a liveliness subscriber appears
/// (`alive == true`) or disappears; `key` is valid only during the call.
pub type MbzLivelinessCallback = Option<unsafe extern "C" fn(context: *mut c_void, key: MbzBytes, alive: bool)>;
/// Called exactly once when a get has ended (all replies in, timed out, or failed to start).
pub type MbzDoneCallback = Option<unsafe extern "C" fn(context: *mut c_void)>;

/// A caller's context pointer. The caller guarantees it may be used from
/// Zenoh's threads for as long as the declaration lives.
#[derive(Clone, Copy)]
struct ContextPtr(*mut c_void);
unsafe impl Send for ContextPtr {}
unsafe impl Sync for ContextPtr {}

const ABSENT: MbzBytes = MbzBytes { data: std::ptr::null(), len: 0 };

fn view(bytes: &[u8]) -> MbzBytes {
    MbzBytes { data: bytes.as_ptr(), len: bytes.len() }
}

fn optional_view(bytes: Option<&[u8]>) -> MbzBytes {
    bytes.map(view).unwrap_or(ABSENT)
}

unsafe fn borrow<'a>(bytes: MbzBytes) -> Option<&'a [u8]> {
    if bytes.data.is_null() {
        None
    } else if bytes.len == 0 {
        Some(&[])
    } else {
        Some(std::slice::from_raw_parts(bytes.data, bytes.len))
    }
}

unsafe fn borrow_str<'a>(bytes: MbzBytes) -> Result<&'a str, String> {
    let raw = borrow(bytes).ok_or_else(|| "missing string argument".to_string())?;
    std::str::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))
}

/// Writes `message` as a NUL-terminated string into `buffer` (truncated to fit).
unsafe fn write_error(buffer: *mut c_char, capacity: usize, message: &str) {
    if buffer.is_null() || capacity == 0 {
        return;
    }
    let bytes = message.as_bytes();
    let n = bytes.len().min(capacity - 1);
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer as *mut u8, n);
    *buffer.add(n) = 0;
}

fn encoding_from(bytes: Option<&[u8]>) -> Option<Encoding> {
    let raw = bytes?;
    if raw.is_empty() {
        return None;
    }
    Some(Encoding::from(String::from_utf8_lossy(raw).into_owned()))
}

/// The handle a guarded declaration made, or null with the reason (or the
/// caught panic) written into `error`.
unsafe fn declared<T>(
    result: std::thread::Result<Result<*mut T, String>>,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut T {
    match result {
        Ok(Ok(handle)) => handle,
        Ok(Err(message)) => {
            write_error(error, error_capacity, &message);
            std::ptr::null_mut()
        }
        Err(_) => {
            write_error(error, error_capacity, "panic inside the Zenoh bridge");
            std::ptr::null_mut()
        }
    }
}

fn run_guarded<F: FnOnce() -> i32>(f: F) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(MBZ_ERR_PANIC)
}

/// Initialises Zenoh's logging from `RUST_LOG`, or `default_level` (e.g.
/// "error") when it is unset. Call once, before opening a session.
#[no_mangle]
pub unsafe extern "C" fn mbz_init_logging(default_level: MbzBytes) -> i32 {
    run_guarded(|| {
        let level = borrow_str(default_level).unwrap_or("error").to_string();
        zenoh::init_log_from_env_or(level);
        MBZ_OK
    })
}

/// Opens a session from a JSON5 configuration. Returns null on failure and
/// writes the reason into `error` (NUL-terminated, at most `error_capacity`).
#[no_mangle]
pub unsafe extern "C" fn mbz_session_open(
    config_json5: MbzBytes,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut MbzSession {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut MbzSession, String> {
        let text = borrow_str(config_json5)?;
        let config = Config::from_json5(text).map_err(|e| format!("bad Zenoh config: {e}"))?;
        let session = zenoh::open(config).wait().map_err(|e| format!("cannot open Zenoh session: {e}"))?;
        Ok(Box::into_raw(Box::new(MbzSession { session, deferred_runtime: None, started: AtomicBool::new(true) })))
    }));
    declared(result, error, error_capacity)
}

/// One setting laid over a base configuration: `key` is a Zenoh config
/// path (`transport/link/tls/root_ca_certificate`), `value` its JSON5 value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MbzConfigEntry {
    pub key: MbzBytes,
    pub value: MbzBytes,
}

/// Opens a session without starting it: nothing listens and nothing
/// connects until `mbz_session_start`, but declarations can be made (they
/// are announced to every peer and client when it starts). This is how a
/// server declares everything it serves before it accepts its first client.
/// The configuration is `config_json5` with each of the `override_count`
/// entries of `overrides` inserted over it, in order (an operator's file
/// under the server's own settings). Returns null on failure with the
/// reason in `error`.
#[no_mangle]
pub unsafe extern "C" fn mbz_session_open_deferred(
    config_json5: MbzBytes,
    overrides: *const MbzConfigEntry,
    override_count: usize,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut MbzSession {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut MbzSession, String> {
        let text = borrow_str(config_json5)?;
        let mut config = Config::from_json5(text).map_err(|e| format!("bad Zenoh config: {e}"))?;
        if override_count > 0 {
            if overrides.is_null() {
                return Err("null config overrides".to_string());
            }
            for entry in std::slice::from_raw_parts(overrides, override_count) {
                let key = borrow_str(entry.key)?;
                let value = borrow_str(entry.value)?;
                config
                    .insert_json5(key, value)
                    .map_err(|e| format!("bad Zenoh config setting {key}: {e}"))?;
            }
        }
        let runtime = ZRuntime::Application
            .block_in_place(RuntimeBuilder::new(config).build())
            .map_err(|e| format!("cannot build the Zenoh runtime: {e}"))?;
        let session = zenoh::session::init(runtime.clone().into())
            .wait()
            .map_err(|e| format!("cannot open Zenoh session: {e}"))?;
        Ok(Box::into_raw(Box::new(MbzSession {
            session,
            deferred_runtime: Some(runtime),
            started: AtomicBool::new(false),
        })))
    }));
    declared(result, error, error_capacity)
}

/// Starts a session opened with `mbz_session_open_deferred`: it listens on
/// its endpoints and connects to its peers. Once only; a session opened with
/// `mbz_session_open` is already started (`MBZ_ERR_INVALID`).
#[no_mangle]
pub unsafe extern "C" fn mbz_session_start(session: *const MbzSession, error: *mut c_char, error_capacity: usize) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), (i32, String)> {
        let s = session.as_ref().ok_or((MBZ_ERR_INVALID, "null session".to_string()))?;
        let runtime = s.deferred_runtime.as_ref().ok_or((MBZ_ERR_INVALID, "session already started".to_string()))?;
        if s.started.swap(true, Ordering::SeqCst) {
            return Err((MBZ_ERR_INVALID, "session already started".to_string()));
        }
        let mut runtime = runtime.clone();
        ZRuntime::Application
            .block_in_place(runtime.start())
            .map_err(|e| (MBZ_ERR_ZENOH, format!("cannot start the Zenoh runtime: {e}")))
    }));
    match result {
        Ok(Ok(())) => MBZ_OK,
        Ok(Err((code, message))) => {
            write_error(error, error_capacity, &message);
            code
        }
        Err(_) => {
            write_error(error, error_capacity, "panic inside the Zenoh bridge");
            MBZ_ERR_PANIC
        }
    }
}

/// Closes a session and frees it. Declarations made on it must have been
/// undeclared first. Null is ignored.
#[no_mangle]
pub unsafe extern "C" fn mbz_session_close(session: *mut MbzSession) -> i32 {
    if session.is_null() {
        return MBZ_OK;
    }
    run_guarded(|| {
        let owned = Box::from_raw(session);
        let closed = owned.session.close().wait();
        // A deferred session's runtime is ours to close (a session made by
        // `zenoh::session::init` does not own its runtime).
        let runtime_closed = match &owned.deferred_runtime {
            Some(runtime) => runtime.close().wait(),
            None => Ok(()),
        };
        match (closed, runtime_closed) {
            (Ok(()), Ok(())) => MBZ_OK,
            _ => MBZ_ERR_ZENOH,
        }
    })
}

/// The Zenoh sessions (unicast transports) a session holds, by what the
/// other end is. For a node's embedded router: its clients, and the peers and
/// routers (other nodes) it is connected to.
#[repr(C)]
pub struct MbzSessionCounts {
    pub clients: u64,
    pub peers: u64,
    pub routers: u64,
}

/// Counts the session's open transports into `out`.
#[no_mangle]
pub unsafe extern "C" fn mbz_session_counts(session: *const MbzSession, out: *mut MbzSessionCounts) -> i32 {
    run_guarded(|| {
        let Some(s) = session.as_ref() else { return MBZ_ERR_INVALID };
        let Some(out) = out.as_mut() else { return MBZ_ERR_INVALID };
        let mut counts = MbzSessionCounts { clients: 0, peers: 0, routers: 0 };
        for transport in s.session.info().transports().wait() {
            match transport.whatami() {
                WhatAmI::Client => counts.clients += 1,
                WhatAmI::Peer => counts.peers += 1,
                WhatAmI::Router => counts.routers += 1,
            }
        }
        *out = counts;
        MBZ_OK
    })
}

/// Declares a queryable on `key_expr`. `callback(context, query)` runs on a
/// Zenoh thread for each query and owns the query it receives. `complete`
/// declares the queryable complete for its key expression.
#[no_mangle]
pub unsafe extern "C" fn mbz_declare_queryable(
    session: *const MbzSession,
    key_expr: MbzBytes,
    complete: bool,
    callback: MbzQueryCallback,
    context: *mut c_void,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut MbzQueryable {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut MbzQueryable, String> {
        let session = session.as_ref().ok_or("null session")?;
        let callback = callback.ok_or("null callback")?;
        let key = KeyExpr::try_from(borrow_str(key_expr)?.to_string()).map_err(|e| format!("bad key expression: {e}"))?;
        let context = ContextPtr(context);
        let gate = Arc::new(CallbackGate::default());
        let inner_gate = gate.clone();
        let queryable = session
            .session
            .declare_queryable(key)
            .complete(complete)
            .callback(move |query: Query| {
                let ctx = context;
                inner_gate.pass(move || {
                    let owned = Box::new(MbzQuery {
                        key: query.key_expr().as_str().to_string(),
                        parameters: query.parameters().as_str().to_string(),
                        payload: query.payload().map(|p| p.to_bytes().into_owned()),
                        encoding: query.encoding().map(|e| e.to_string()),
                        attachment: query.attachment().map(|a| a.to_bytes().into_owned()),
                        query,
                    });
                    callback(ctx.0, Box::into_raw(owned));
                });
            })
            .wait()
            .map_err(|e| format!("cannot declare queryable: {e}"))?;
        Ok(Box::into_raw(Box::new(MbzQueryable { queryable, gate })))
    }));
    declared(result, error, error_capacity)
}

/// Undeclares a queryable and frees it. When it returns, no callback of this
/// queryable is running or will run. Null is ignored.
#[no_mangle]
pub unsafe extern "C" fn mbz_undeclare_queryable(queryable: *mut MbzQueryable) -> i32 {
    if queryable.is_null() {
        return MBZ_OK;
    }
    run_guarded(|| {
        let owned = Box::from_raw(queryable);
        owned.gate.close_and_drain();
        match owned.queryable.undeclare().wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// The query's key expression (no parameters). Borrowed from the query.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_key(query: *const MbzQuery) -> MbzBytes {
    match query.as_ref() {
        Some(q) => view(q.key.as_bytes()),
        None => ABSENT,
    }
}

/// The query's selector parameters, as sent (`k=v;k=v`). Borrowed from the query.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_parameters(query: *const MbzQuery) -> MbzBytes {
    match query.as_ref() {
        Some(q) => view(q.parameters.as_bytes()),
        None => ABSENT,
    }
}

/// The query's payload, or absent (`data == NULL`) when it carries none.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_payload(query: *const MbzQuery) -> MbzBytes {
    match query.as_ref() {
        Some(q) => optional_view(q.payload.as_deref()),
        None => ABSENT,
    }
}

/// The encoding of the query's payload, as text, or absent when it carries none.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_encoding(query: *const MbzQuery) -> MbzBytes {
    match query.as_ref() {
        Some(q) => optional_view(q.encoding.as_deref().map(str::as_bytes)),
        None => ABSENT,
    }
}

/// The query's attachment, or absent when it carries none.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_attachment(query: *const MbzQuery) -> MbzBytes {
    match query.as_ref() {
        Some(q) => optional_view(q.attachment.as_deref()),
        None => ABSENT,
    }
}

/// Sends an OK reply on `key_expr` (which must intersect the query's).
/// `encoding` and `attachment` may be absent. Callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_reply(
    query: *const MbzQuery,
    key_expr: MbzBytes,
    payload: MbzBytes,
    encoding: MbzBytes,
    attachment: MbzBytes,
) -> i32 {
    run_guarded(|| {
        let Some(q) = query.as_ref() else { return MBZ_ERR_INVALID };
        let Ok(key) = borrow_str(key_expr) else { return MBZ_ERR_INVALID };
        let body = ZBytes::from(borrow(payload).unwrap_or(&[]).to_vec());
        let mut builder = q.query.reply(key.to_string(), body);
        if let Some(enc) = encoding_from(borrow(encoding)) {
            builder = builder.encoding(enc);
        }
        if let Some(att) = borrow(attachment) {
            builder = builder.attachment(ZBytes::from(att.to_vec()));
        }
        match builder.wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// Sends an error reply. `encoding` may be absent. Callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_reply_err(query: *const MbzQuery, payload: MbzBytes, encoding: MbzBytes) -> i32 {
    run_guarded(|| {
        let Some(q) = query.as_ref() else { return MBZ_ERR_INVALID };
        let body = ZBytes::from(borrow(payload).unwrap_or(&[]).to_vec());
        let mut builder = q.query.reply_err(body);
        if let Some(enc) = encoding_from(borrow(encoding)) {
            builder = builder.encoding(enc);
        }
        match builder.wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// Finishes the query (the client sees the end of its reply stream) and
/// frees the handle. Callable from any thread. Null is ignored.
#[no_mangle]
pub unsafe extern "C" fn mbz_query_drop(query: *mut MbzQuery) {
    if query.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(query))));
}

/// Publishes `payload` on `key_expr`. `encoding` and `attachment` may be
/// absent. `congestion_control` is one of the `MBZ_CONGESTION_*` constants.
#[no_mangle]
pub unsafe extern "C" fn mbz_put(
    session: *const MbzSession,
    key_expr: MbzBytes,
    payload: MbzBytes,
    encoding: MbzBytes,
    attachment: MbzBytes,
    congestion_control: i32,
) -> i32 {
    run_guarded(|| {
        let Some(s) = session.as_ref() else { return MBZ_ERR_INVALID };
        let Ok(key) = borrow_str(key_expr) else { return MBZ_ERR_INVALID };
        let Ok(key) = KeyExpr::try_from(key.to_string()) else { return MBZ_ERR_INVALID };
        let body = ZBytes::from(borrow(payload).unwrap_or(&[]).to_vec());
        let mut builder = s.session.put(key, body).congestion_control(match congestion_control {
            MBZ_CONGESTION_BLOCK => CongestionControl::Block,
            _ => CongestionControl::Drop,
        });
        if let Some(enc) = encoding_from(borrow(encoding)) {
            builder = builder.encoding(enc);
        }
        if let Some(att) = borrow(attachment) {
            builder = builder.attachment(ZBytes::from(att.to_vec()));
        }
        match builder.wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// Declares a subscriber on `key_expr`; `callback(context, sample)` runs on a
/// Zenoh thread for each sample, with views valid only during the call.
#[no_mangle]
pub unsafe extern "C" fn mbz_declare_subscriber(
    session: *const MbzSession,
    key_expr: MbzBytes,
    callback: MbzSampleCallback,
    context: *mut c_void,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut MbzSubscriber {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut MbzSubscriber, String> {
        let session = session.as_ref().ok_or("null session")?;
        let callback = callback.ok_or("null callback")?;
        let key = KeyExpr::try_from(borrow_str(key_expr)?.to_string()).map_err(|e| format!("bad key expression: {e}"))?;
        let context = ContextPtr(context);
        let gate = Arc::new(CallbackGate::default());
        let inner_gate = gate.clone();
        let subscriber = session
            .session
            .declare_subscriber(key)
            .callback(move |sample: Sample| {
                let ctx = context;
                inner_gate.pass(move || {
                    let payload = sample.payload().to_bytes();
                    let encoding = sample.encoding().to_string();
                    let attachment = sample.attachment().map(|a| a.to_bytes());
                    let timestamp = sample.timestamp().map(|t| t.to_string());
                    let view_of = MbzSample {
                        key: view(sample.key_expr().as_str().as_bytes()),
                        payload: view(&payload),
                        encoding: view(encoding.as_bytes()),
                        attachment: optional_view(attachment.as_deref()),
                        timestamp: optional_view(timestamp.as_deref().map(str::as_bytes)),
                    };
                    callback(ctx.0, &view_of);
                });
            })
            .wait()
            .map_err(|e| format!("cannot declare subscriber: {e}"))?;
        Ok(Box::into_raw(Box::new(MbzSubscriber { subscriber, gate })))
    }));
    declared(result, error, error_capacity)
}

/// Undeclares a subscriber and frees it. When it returns, no callback of this
/// subscriber is running or will run. Null is ignored.
#[no_mangle]
pub unsafe extern "C" fn mbz_undeclare_subscriber(subscriber: *mut MbzSubscriber) -> i32 {
    if subscriber.is_null() {
        return MBZ_OK;
    }
    run_guarded(|| {
        let owned = Box::from_raw(subscriber);
        owned.gate.close_and_drain();
        match owned.subscriber.undeclare().wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// Declares a liveliness token on `key_expr`; other sessions see it alive
/// until it is undeclared or this session is gone (closed, crashed, cut off).
#[no_mangle]
pub unsafe extern "C" fn mbz_declare_liveliness_token(
    session: *const MbzSession,
    key_expr: MbzBytes,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut MbzLivelinessToken {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut MbzLivelinessToken, String> {
        let session = session.as_ref().ok_or("null session")?;
        let key = KeyExpr::try_from(borrow_str(key_expr)?.to_string()).map_err(|e| format!("bad key expression: {e}"))?;
        let token = session
            .session
            .liveliness()
            .declare_token(key)
            .wait()
            .map_err(|e| format!("cannot declare liveliness token: {e}"))?;
        Ok(Box::into_raw(Box::new(MbzLivelinessToken { token })))
    }));
    declared(result, error, error_capacity)
}

/// Undeclares a liveliness token and frees it. Null is ignored.
#[no_mangle]
pub unsafe extern "C" fn mbz_undeclare_liveliness_token(token: *mut MbzLivelinessToken) -> i32 {
    if token.is_null() {
        return MBZ_OK;
    }
    run_guarded(|| {
        let owned = Box::from_raw(token);
        match owned.token.undeclare().wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// Declares a liveliness subscriber on `key_expr`: `callback(context, key,
/// alive)` runs on a Zenoh thread when a matching token appears or goes, and
/// first for every token already alive. Release with
/// `mbz_undeclare_subscriber`.
#[no_mangle]
pub unsafe extern "C" fn mbz_declare_liveliness_subscriber(
    session: *const MbzSession,
    key_expr: MbzBytes,
    callback: MbzLivelinessCallback,
    context: *mut c_void,
    error: *mut c_char,
    error_capacity: usize,
) -> *mut MbzSubscriber {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut MbzSubscriber, String> {
        let session = session.as_ref().ok_or("null session")?;
        let callback = callback.ok_or("null callback")?;
        let key = KeyExpr::try_from(borrow_str(key_expr)?.to_string()).map_err(|e| format!("bad key expression: {e}"))?;
        let context = ContextPtr(context);
        let gate = Arc::new(CallbackGate::default());
        let inner_gate = gate.clone();
        let subscriber = session
            .session
            .liveliness()
            .declare_subscriber(key)
            .history(true)
            .callback(move |sample: Sample| {
                let ctx = context;
                inner_gate.pass(move || {
                    let alive = sample.kind() == SampleKind::Put;
                    callback(ctx.0, view(sample.key_expr().as_str().as_bytes()), alive);
                });
            })
            .wait()
            .map_err(|e| format!("cannot declare liveliness subscriber: {e}"))?;
        Ok(Box::into_raw(Box::new(MbzSubscriber { subscriber, gate })))
    }));
    declared(result, error, error_capacity)
}

/// Asks the network which liveliness tokens matching `key_expr` are alive:
/// `on_reply` runs once per live token (its key in `reply->key`), `on_done`
/// exactly once at the end (also when this fails).
#[no_mangle]
pub unsafe extern "C" fn mbz_liveliness_get(
    session: *const MbzSession,
    key_expr: MbzBytes,
    timeout_ms: u64,
    on_reply: MbzReplyCallback,
    on_done: MbzDoneCallback,
    context: *mut c_void,
) -> i32 {
    let callbacks = GetCallbacks { context: ContextPtr(context), on_reply, on_done };
    run_guarded(move || {
        let Some(s) = session.as_ref() else { return MBZ_ERR_INVALID };
        let Ok(key) = borrow_str(key_expr) else { return MBZ_ERR_INVALID };
        let Ok(key) = KeyExpr::try_from(key.to_string()) else { return MBZ_ERR_INVALID };
        let builder = s
            .session
            .liveliness()
            .get(key)
            .timeout(Duration::from_millis(timeout_ms.max(1)))
            .callback(move |reply: Reply| callbacks.deliver(&reply));
        match builder.wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}

/// Calls the done callback when dropped: Zenoh drops a get's callback once
/// the query has ended, whichever way it ended.
struct GetCallbacks {
    context: ContextPtr,
    on_reply: MbzReplyCallback,
    on_done: MbzDoneCallback,
}

impl GetCallbacks {
    fn deliver(&self, reply: &Reply) {
        let Some(on_reply) = self.on_reply else { return };
        let _ = catch_unwind(AssertUnwindSafe(|| match reply.result() {
            Ok(sample) => {
                let payload = sample.payload().to_bytes();
                let encoding = sample.encoding().to_string();
                let attachment = sample.attachment().map(|a| a.to_bytes());
                let r = MbzReply {
                    is_ok: true,
                    key: view(sample.key_expr().as_str().as_bytes()),
                    payload: view(&payload),
                    encoding: view(encoding.as_bytes()),
                    attachment: optional_view(attachment.as_deref()),
                };
                unsafe { on_reply(self.context.0, &r) };
            }
            Err(err) => {
                let payload = err.payload().to_bytes();
                let encoding = err.encoding().to_string();
                let r = MbzReply {
                    is_ok: false,
                    key: ABSENT,
                    payload: view(&payload),
                    encoding: view(encoding.as_bytes()),
                    attachment: ABSENT,
                };
                unsafe { on_reply(self.context.0, &r) };
            }
        }));
    }
}

impl Drop for GetCallbacks {
    fn drop(&mut self) {
        if let Some(on_done) = self.on_done {
            let ctx = self.context;
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe { on_done(ctx.0) }));
        }
    }
}

/// Sends a query on `selector` (`key?k=v;k=v`) with an optional payload,
/// encoding and attachment. `on_reply` runs for each reply on a Zenoh
/// thread; `on_done` runs exactly once when the query has ended, including
/// when this function fails (in which case it may run before it returns).
#[no_mangle]
pub unsafe extern "C" fn mbz_get(
    session: *const MbzSession,
    selector: MbzBytes,
    payload: MbzBytes,
    encoding: MbzBytes,
    attachment: MbzBytes,
    options: *const MbzGetOptions,
    on_reply: MbzReplyCallback,
    on_done: MbzDoneCallback,
    context: *mut c_void,
) -> i32 {
    let callbacks = GetCallbacks { context: ContextPtr(context), on_reply, on_done };
    run_guarded(move || {
        let Some(s) = session.as_ref() else { return MBZ_ERR_INVALID };
        let Ok(selector) = borrow_str(selector) else { return MBZ_ERR_INVALID };
        let selector = selector.to_string();
        let mut builder = s.session.get(selector);
        if let Some(body) = borrow(payload) {
            builder = builder.payload(ZBytes::from(body.to_vec()));
        }
        if let Some(enc) = encoding_from(borrow(encoding)) {
            builder = builder.encoding(enc);
        }
        if let Some(att) = borrow(attachment) {
            builder = builder.attachment(ZBytes::from(att.to_vec()));
        }
        if let Some(opts) = options.as_ref() {
            if opts.timeout_ms > 0 {
                builder = builder.timeout(Duration::from_millis(opts.timeout_ms));
            }
            builder = builder.target(match opts.target {
                MBZ_TARGET_ALL => QueryTarget::All,
                MBZ_TARGET_ALL_COMPLETE => QueryTarget::AllComplete,
                _ => QueryTarget::BestMatching,
            });
            builder = builder.consolidation(match opts.consolidation {
                MBZ_CONSOLIDATION_NONE => ConsolidationMode::None,
                MBZ_CONSOLIDATION_MONOTONIC => ConsolidationMode::Monotonic,
                MBZ_CONSOLIDATION_LATEST => ConsolidationMode::Latest,
                _ => ConsolidationMode::Auto,
            });
        }
        let builder = builder.callback(move |reply: Reply| callbacks.deliver(&reply));
        match builder.wait() {
            Ok(()) => MBZ_OK,
            Err(_) => MBZ_ERR_ZENOH,
        }
    })
}
