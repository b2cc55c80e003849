//! [`RedisQuota`]: rate limits shared by every instance, kept in Redis.
//!
//! The same GCRA as governor's in-process limiters (a bucket of `burst` that refills evenly
//! over the quota's period), so that a limit reads the same with one instance or ten: each key
//! holds its *theoretical arrival time* in milliseconds, and an event is allowed when that is
//! not further ahead of now than the bucket's tolerance. The check and the update are one Lua
//! script, so concurrent instances never both take the last token; the time is Redis's own
//! (`TIME`), so the instances' clocks need not agree; and the key expires once its bucket is
//! full again, so idle users cost nothing.
//!
//! Redis has no rate-limit command of its own (the `redis-cell` module is not in stock Redis),
//! and no maintained crate does this over redis-rs; the script is the whole algorithm.

use std::time::Duration;

use governor::Quota;
use redis::{Script, aio::ConnectionManager};

use app::limits::SharedLimiter;

use super::redis::bounded;

/// KEYS[1]: the bucket. ARGV[1]: milliseconds between two events at the steady rate.
/// ARGV[2]: the burst. Answers 0 when allowed, else the milliseconds to wait.
const GCRA: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
tat = tat + interval
redis.call('SET', KEYS[1], tat, 'PX', tat - now)
return 0
";

/// Shared rate limits over a Redis connection (the fan-out's publishing connection).
#[derive(Clone)]
pub struct RedisQuota {
    connection: ConnectionManager,
    prefix: String,
    script: Script,
}

impl RedisQuota {
    pub fn new(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            script: Script::new(GCRA),
        }
    }
}

#[async_trait::async_trait]
impl SharedLimiter for RedisQuota {
    async fn check(&self, key: &str, quota: Quota) -> Result<Result<(), Duration>, String> {
        let interval_ms = u64::try_from(quota.replenish_interval().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{}:limit:{key}", self.prefix));
        invocation.arg(interval_ms).arg(quota.burst_size().get());
        let wait_ms: u64 = bounded(invocation.invoke_async(&mut connection))
            .await
            .map_err(|error| error.to_string())?;
        Ok(if wait_ms == 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait_ms))
        })
    }
}
