//! Implementations of [`app::realtime::Realtime`], the port live events go through.
//!
//! - [`local`]: fan-out inside this process, for a single server instance;
//! - [`redis`]: across several instances over Redis pub/sub (`REDIS_URL`), each delivering to
//!   its own sockets through a [`local::LocalRealtime`];
//! - [`quota`]: rate limits kept in that Redis, so that every instance counts the same.

pub mod local;
pub mod quota;
pub mod redis;
