//! Implementations of [`app::realtime::Realtime`], the port live events go through.
//!
//! - [`local`]: fan-out inside this process, for a single server instance;
//! - [`redis`]: across several instances over Redis pub/sub (`REDIS_URL`), each delivering to
//!   its own sockets through a [`local::LocalRealtime`].

pub mod local;
pub mod redis;
