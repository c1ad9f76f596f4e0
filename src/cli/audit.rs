//! `kura audit`: the audit trail, filtered, newest first (the admin service's query).

use clap::Args;

use super::admin::open_admin;
use super::CliError;
use crate::config::Config;
use crate::store::{now_ms, AuditQuery};

/// `kura audit [--user U] [--path P] [--since T]`
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this user's actions (`cli:NAME` for admin commands run by account NAME).
    #[arg(long)]
    user: Option<String>,
    /// Only actions on this path or below it, e.g. /photos/2024.
    #[arg(long)]
    path: Option<String>,
    /// Only actions since this time: `30m`, `12h`, `7d`, `2026-12-01` or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Milliseconds since the epoch of `--since`.
fn since_ms(s: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--since {s}: give 30m, 12h, 7d, 2026-12-01 or an RFC 3339 time"
        ))
    };
    let s = s.trim();
    if let Some((n, unit)) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .filter(|(n, _)| !n.is_empty())
    {
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        if secs > 0 {
            let n: i64 = n.parse().map_err(|_| bad())?;
            return Ok(now_ms() - n.saturating_mul(secs * 1000));
        }
    }
    let rfc = time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &rfc) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &day).map_err(|_| bad())?;
    Ok(d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// A time as RFC 3339 in UTC, to the millisecond.
fn shown_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Runs `kura audit`.
pub async fn audit(cfg: &Config, a: AuditArgs) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    let q = AuditQuery {
        actor: a.user,
        path: a.path,
        since_ms: a.since.as_deref().map(since_ms).transpose()?,
        before_id: None,
        limit: a.limit.clamp(1, 10_000),
    };
    let rows = admin.audit(&q).await?;
    if a.json {
        for r in rows {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
        }
        return Ok(());
    }
    println!("time\tactor\tclient\tprotocol\taction\tpath\tpath2\toutcome");
    for r in rows {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            shown_time(r.time_ms),
            r.actor.as_deref().unwrap_or("-"),
            r.client.as_deref().unwrap_or("-"),
            r.protocol,
            r.action,
            r.path.as_deref().unwrap_or("-"),
            r.path2.as_deref().unwrap_or("-"),
            r.outcome
        );
    }
    Ok(())
}
