//! Implementations of [`app::realtime::Realtime`], the port live events go through.
//!
//! - [`local`]: fan-out inside this process, for a single server instance.

pub mod local;
