//! `GET /`: the status page. One small self-contained HTML document (no
//! external assets, no framework), rendered on the server from the same
//! document as `/api/status`, readable on a phone. It reloads itself every
//! few seconds while a sync runs; the buttons call the control API.

use super::http::Response;
use crate::app::App;
use crate::app::check::ServerCheck;
use crate::app::push::Connection;
use crate::app::reload::ReloadStatus;
use crate::app::status::{AccountStatus, HistoryStatus, LibraryStatus, ServerCondition, ServerStatus, StatusDocument};
use chrono::{Local, TimeZone};
use std::fmt::Write;

pub fn render(app: &App) -> Response {
    match app.status() {
        Ok(document) => Response::new(200, "text/html; charset=utf-8", html(&document, &super::strip::recent(app))).with_header(
            hyper::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'",
        ),
        Err(err) => Response::error(500, &format!("reading the store failed: {err}")),
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "2026-01-01 12:10 (3 min ago)" in the daemon's local time.
fn when(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else { return "never".into() };
    let absolute =
        Local.timestamp_opt(at, 0).single().map_or_else(|| at.to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string());
    format!("{absolute} ({})", relative(at.saturating_sub(now)))
}

fn relative(delta: i64) -> String {
    let span = delta.unsigned_abs();
    let text = match span {
        0..=59 => format!("{span} s"),
        60..=3599 => format!("{} min", span / 60),
        3600..=172_799 => format!("{:.1} h", span as f64 / 3600.0),
        _ => format!("{} days", span / 86_400),
    };
    if delta < 0 { format!("{text} ago") } else { format!("in {text}") }
}

fn duration(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:12px;background:#f4f5f7;color:#222;max-width:900px}\
h1{font-size:20px;margin:4px 0 12px}section{background:#fff;border-radius:8px;padding:12px;margin:0 0 12px;box-shadow:0 1px 2px #0002}\
h2{font-size:17px;margin:0 0 6px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}.muted{color:#666;font-size:13px}\
.badge{font-size:12px;padding:2px 8px;border-radius:10px;background:#ddd}.idle{background:#d4f4dd}.syncing,.queued{background:#d6e6ff}.waiting{background:#ffe6c7}\
.failed,.disconnected{background:#ffd9d6}.paused{background:#fff1c2}.interrupted,.new{background:#eee}\
table{border-collapse:collapse;width:100%;margin-top:8px;font-size:14px}td,th{text-align:left;padding:4px 6px;border-top:1px solid #eee;vertical-align:top}\
button{font:inherit;padding:6px 12px;margin:4px 4px 0 0;border-radius:6px;border:1px solid #bbb;background:#fafafa}\
progress{width:100%}.error{color:#a40000}#msg{min-height:1.2em}\
.strip{display:flex;gap:8px;overflow-x:auto}.strip figure{margin:0;width:80px;font-size:12px}.strip img{border-radius:4px;display:block}";

const SCRIPT: &str = "async function call(path,body){const h={};let t=sessionStorage.getItem('mediasync-token');\
if(t)h['Authorization']='Bearer '+t;const o={method:'POST',headers:h};\
if(body!==undefined){h['Content-Type']='application/x-www-form-urlencoded';o.body=body;}let r=await fetch(path,o);\
if(r.status==401){t=prompt('Admin token (on the box: sudo mediasync admin-token):');if(!t)return null;sessionStorage.setItem('mediasync-token',t);\
h['Authorization']='Bearer '+t;r=await fetch(path,o);}const j=await r.json().catch(()=>({}));\
document.getElementById('msg').textContent=j.message||j.error||r.status;return j;}\
async function act(s,a){await call('/api/servers/'+encodeURIComponent(s)+'/'+a);setTimeout(()=>location.reload(),800);}\
async function connect(s){const j=await call('/api/servers/'+encodeURIComponent(s)+'/connect');if(j&&j.url)location.href=j.url;}\
async function paste(i){const v=document.getElementById('paste'+i).value;\
const j=await call('/api/spotify/callback','url='+encodeURIComponent(v));if(j&&j.ok)setTimeout(()=>location.reload(),800);}";

pub fn html(document: &StatusDocument, strip: &str) -> String {
    let now = document.daemon.as_ref().map_or_else(crate::sync::now_epoch, |daemon| daemon.now);
    let busy = document.servers.iter().any(|server| {
        matches!(condition(server), ServerCondition::Syncing | ServerCondition::Queued | ServerCondition::Waiting)
    });
    let mut out = String::with_capacity(8 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">{}<title>mediasync</title><style>{STYLE}</style></head><body>\
<h1>mediasync</h1><p class=muted>version {} · store {} · {}</p><p id=msg></p>",
        if busy { "<meta http-equiv=refresh content=3>" } else { "" },
        escape(document.version),
        escape(&document.store),
        if busy { "refreshing every 3 s while a sync runs" } else { "idle" },
    );
    if let Some(reload) = document.daemon.as_ref().and_then(|daemon| daemon.reload.as_ref()) {
        reload_block(&mut out, reload, now);
    }
    if document.servers.is_empty() {
        let config = document.daemon.as_ref().map_or("the config file", |daemon| daemon.config.as_str());
        let _ = write!(
            out,
            "<section><h2>No media server is configured</h2><p>Nothing is synced until you add one. Edit the config (<code>/etc/mediasync/config.toml</code> on a packaged install; this service reads <code>{}</code>): its server entries are commented out; remove the <code>#</code> in front of the lines of one and put in your server's address and token. Then run <code>sudo mediasync check</code> and <code>sudo systemctl reload mediasync</code>.</p></section>",
            escape(config)
        );
    }
    for (index, server) in document.servers.iter().enumerate() {
        server_section(&mut out, server, index, now);
    }
    out.push_str(strip);
    let _ = write!(
        out,
        "<p class=muted>JSON: <a href=/api/status>/api/status</a> · <a href=/metrics>/metrics</a> · <a href=/api/changes?limit=20>/api/changes</a> · /api/history?server=</p><script>{SCRIPT}</script></body></html>"
    );
    out
}

/// The notification socket: its state (and why, when it is not
/// connected) and the last notice about the library.
fn notifications_line(out: &mut String, notifications: &crate::app::push::Notifications, now: i64) {
    let connection = notifications.connection.map_or("starting", |connection| connection.text());
    let _ = write!(out, "<div>Notifications: {} {}", escape(connection), when(notifications.since, now));
    if let Some(error) = &notifications.error {
        let _ = write!(out, " ({})", escape(error));
    }
    match (&notifications.last_notice, notifications.last_notice_at) {
        (Some(notice), Some(at)) => {
            let _ = write!(out, " · last notice {}: {}", when(Some(at), now), escape(notice));
        }
        _ => out.push_str(" · no notice yet"),
    }
    if notifications.pending > 0 {
        let _ = write!(out, " · {} waiting to sync", notifications.pending);
    }
    if let Some(code) = &notifications.quick_connect_code {
        let _ = write!(
            out,
            "<br>Quick Connect code <b>{}</b>: enter it in a Jellyfin app signed in as the user to follow (Settings, Quick Connect), before {}",
            escape(code),
            when(notifications.quick_connect_until, now)
        );
    }
    out.push_str("</div>");
}

/// A server's state as the page shows it (idle when no service runs).
fn condition(server: &ServerStatus) -> ServerCondition {
    server.running.as_ref().map_or(ServerCondition::Idle, |running| running.state)
}

fn server_section(out: &mut String, server: &ServerStatus, index: usize, now: i64) {
    let name = server.name.as_str();
    let state = condition(server).name();
    let running = server.running.as_ref();
    let live = running.map(|running| &running.live);
    let paused = running.is_some_and(|running| running.paused);
    let _ = write!(
        out,
        "<section><h2>{} <span class=\"badge {state}\">{state}</span></h2><div class=muted>{} · {} · schedule <code>{}</code></div>",
        escape(name),
        escape(server.kind),
        escape(&server.url),
        escape(running.map_or("", |running| running.schedule.as_str())),
    );
    let _ = write!(
        out,
        "<div>Last success: {} · Next run: {}</div>",
        when(server.last_success_at, now),
        if paused { "paused".to_string() } else { when(live.and_then(|live| live.next_run_at), now) },
    );
    if let Some(notifications) = live.and_then(|live| live.notifications.as_ref()) {
        notifications_line(out, notifications, now);
    }
    if let Some(until) = live.and_then(|live| live.waiting_until).filter(|_| state == "waiting") {
        let _ = write!(
            out,
            "<div>Waiting for {} until {}</div>",
            escape(live.and_then(|live| live.waiting_for).map_or("the server", |wait| wait.text())),
            when(Some(until), now)
        );
    }
    if let Some(error) = &server.last_error {
        let _ = write!(out, "<div class=error>Failed: {}</div>", escape(error));
    }
    if let Some(artwork) = &server.artwork {
        super::strip::progress_line(out, artwork);
    }
    if let Some(retry) = live.and_then(|live| live.retry.as_ref()).filter(|_| !paused) {
        let _ = write!(
            out,
            "<div>Next retry: {} (after {} failed run{} in a row{})</div>",
            when(Some(retry.at), now),
            retry.failures,
            if retry.failures == 1 { "" } else { "s" },
            // The reason, unless the "Failed" line above already says it.
            match &server.last_error {
                Some(error) if *error == retry.reason => String::new(),
                _ => format!(": {}", escape(&retry.reason)),
            }
        );
    }
    if let Some(check) = live.and_then(|live| live.check.as_ref()) {
        check_block(out, check, now);
    }
    let quoted = escape(&serde_json::to_string(name).unwrap_or_default());
    if let Some(account) = &server.account {
        account_block(out, account, &quoted, index, now);
    }
    if let Some(history) = &server.history {
        let next_poll = live.and_then(|live| live.next_history_at.or(live.next_run_at));
        history_block(out, history, if paused { None } else { next_poll }, now);
    }
    let _ = write!(out, "<div>");
    for (action, label) in [("sync", "Sync now"), ("sync?full=1", "Full sync")] {
        let _ = write!(out, "<button onclick='act({quoted},\"{action}\")'>{label}</button>");
    }
    let _ = write!(out, "<button onclick='act({quoted},\"check\")'>Check</button>");
    let toggle = if paused { ("resume", "Resume") } else { ("pause", "Pause") };
    let _ = write!(out, "<button onclick='act({quoted},\"{}\")'>{}</button>", toggle.0, toggle.1);
    // The notification socket of a Jellyfin server waits for a user's
    // sign-in: Quick Connect gives one without a password file.
    let sign_in_needed = live
        .and_then(|live| live.notifications.as_ref())
        .and_then(|shown| shown.connection)
        .is_some_and(|connection| matches!(connection, Connection::SignInNeeded | Connection::Refused));
    if server.kind == "jellyfin" && sign_in_needed {
        let _ = write!(out, "<button onclick='act({quoted},\"quick-connect\")'>Sign in with Quick Connect</button>");
    }
    let _ = write!(
        out,
        "<button onclick='if(confirm(\"Forget where this server stands? The next run is a full one.\"))act({quoted},\"reset\")'>Reset</button></div>"
    );
    if server.libraries.is_empty() {
        let _ = write!(out, "<p class=muted>No library stored yet.</p></section>");
        return;
    }
    let _ = write!(out, "<table><tr><th>Library</th><th>State</th><th>Items</th><th>Last run</th></tr>");
    for library in &server.libraries {
        library_row(out, library, &quoted, now);
    }
    let _ = write!(out, "</table></section>");
}

/// The last reload: refused (the previous config keeps running), or settings
/// that wait for a restart.
fn reload_block(out: &mut String, reload: &ReloadStatus, now: i64) {
    if let Some(refused) = &reload.refused {
        let _ = write!(
            out,
            "<section class=error>The config was not reloaded ({}): {}. The previous config keeps running; fix the file and reload again.</section>",
            when(Some(reload.at), now),
            escape(refused)
        );
    } else if !reload.needs_restart.is_empty() {
        let _ = write!(
            out,
            "<section>Reloaded {}; {} changed, which applies after <code>systemctl restart mediasync</code>.</section>",
            when(Some(reload.at), now),
            escape(&reload.needs_restart.join(", "))
        );
    }
}

/// The last check: reachable, credentials, libraries, clock offset.
fn check_block(out: &mut String, check: &ServerCheck, now: i64) {
    let yes_no = |value: Option<bool>, yes: &str, no: &str| match value {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => "unknown".to_string(),
    };
    let libraries = check.libraries.as_ref().map_or_else(
        || "libraries unknown".to_string(),
        |titles| {
            format!("{} librar{} ({})", titles.len(), if titles.len() == 1 { "y" } else { "ies" }, titles.join(", "))
        },
    );
    let clock =
        check.clock_offset_seconds.map_or_else(|| "clock unknown".to_string(), |offset| format!("clock {offset:+} s"));
    let _ = write!(
        out,
        "<div class=muted>Check {}: {} · {} · {} · {}</div>",
        when(Some(check.checked_at), now),
        yes_no(check.reachable, "reachable", "not reachable"),
        yes_no(check.credentials_accepted, "credentials accepted", "credentials refused"),
        escape(&libraries),
        clock,
    );
    if let Some(problem) = &check.problem {
        let _ = write!(out, "<div class=error>Check: {}</div>", escape(problem));
    }
}

/// A Spotify server's account: connected or not, a re-authorisation the
/// user must do, a rate-limit or quota pause, and "Connect Spotify" with the
/// fallback for a browser that is not on the box.
fn account_block(out: &mut String, account: &AccountStatus, quoted: &str, index: usize, now: i64) {
    if let Some(reason) = &account.reauthorize {
        let _ = write!(out, "<div class=error>Re-authorise needed: {}</div>", escape(reason));
    } else if account.connected {
        let _ = write!(out, "<div>Spotify account connected {}</div>", when(account.connected_at, now));
    } else {
        let _ = write!(out, "<div>Not connected to a Spotify account yet.</div>");
    }
    if let Some(until) = account.waiting_until {
        let _ = write!(
            out,
            "<div>Waiting for Spotify's {} until {}; progress is saved and the sync resumes then.</div>",
            escape(account.waiting_for.as_deref().unwrap_or("rate limit")),
            when(Some(until), now)
        );
    }
    let label = if account.connected { "Re-connect Spotify" } else { "Connect Spotify" };
    let _ = write!(
        out,
        "<div><button onclick='connect({quoted})'>{label}</button></div><details><summary class=muted>Browser not on this box?</summary>\
<p class=muted>After you agree, Spotify sends your browser to this box's address on 127.0.0.1, which only loads on the box itself. If that page does not load, copy the address from the address bar and paste it here:</p>\
<input id=paste{index} size=40 placeholder='http://127.0.0.1:…/spotify/callback?code=…'> <button onclick='paste({index})'>Finish connecting</button></details>"
    );
}

/// A server's history: what to do when the account lacks the permission,
/// a possible gap, how many plays are stored, the next poll and the last
/// plays.
fn history_block(out: &mut String, history: &HistoryStatus, next_poll: Option<i64>, now: i64) {
    if history.reconnect {
        let _ = write!(
            out,
            "<div class=error>Connect Spotify again to record what you play: this account was connected before mediasync read the listening history, which needs one more permission.</div>"
        );
        return;
    }
    if let Some(gap) = &history.gap {
        let _ = write!(
            out,
            "<div class=error>Possible gap in the history (found {}): more plays happened between two polls than the server lists, so plays before {} may be missing. Poll more often (Spotify: a shorter <code>history_every</code>).</div>",
            when(Some(gap.found_at), now),
            when(gap.before, now),
        );
    }
    let _ = write!(out, "<div>History: {} plays stored · next poll: {}</div>", history.plays, when(next_poll, now));
    if history.last_plays.is_empty() {
        return;
    }
    let _ = write!(out, "<table><tr><th>Played</th><th>What</th><th>By, from</th></tr>");
    for play in &history.last_plays {
        let details = play.play.as_ref().map(|details| {
            [&details.artists, &details.show, &details.album, &details.context]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" · ")
        });
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=muted>{}</td></tr>",
            when(Some(play.updated_at), now),
            escape(&play.title),
            escape(&details.unwrap_or_default()),
        );
    }
    let _ = write!(out, "</table>");
}

/// "500 episode, 40 season, 10 show": by kind name, as the JSON lists them.
fn counts_text(library: &LibraryStatus) -> String {
    let mut counts: Vec<(&str, u64)> = library.counts.iter().map(|(kind, count)| (kind.name(), *count)).collect();
    counts.sort_unstable();
    counts.iter().map(|(kind, count)| format!("{count} {kind}")).collect::<Vec<_>>().join(", ")
}

fn library_row(out: &mut String, library: &LibraryStatus, server: &str, now: i64) {
    let state = library.state.name();
    let mut status = format!("<span class=\"badge {state}\">{state}</span>");
    if let Some(progress) = &library.progress {
        let pass = pass_name(progress.pass);
        match progress.total {
            Some(total) => {
                let done = progress.done;
                let eta = progress.eta_seconds.map(|eta| format!(", about {} left", duration(eta))).unwrap_or_default();
                let _ = write!(
                    status,
                    "<progress value={done} max={total}></progress><div class=muted>{} pass, {} {done}/{total}{eta}</div>",
                    escape(pass),
                    escape(progress.kind.map_or("", |kind| kind.name())),
                );
            }
            None => {
                let _ = write!(status, "<div class=muted>fetching changes ({} seen)</div>", progress.done);
            }
        }
    }
    if let Some(error) = &library.last_error {
        let _ = write!(status, "<div class=error>{}</div>", escape(error));
    }
    if let Some(refused) = &library.refused {
        // The deletions are real only if the server really lost the items:
        // the button says so, and asks before it allows them.
        let question = format!(
            "Delete {} of the {} stored items of {}? The server confirmed them gone; if a drive or a share is only missing, cancel and fix it first.",
            refused.items, refused.stored, library.title
        );
        let _ = write!(
            status,
            "<div><button onclick='if(confirm({}))act({server},\"sync?force=1\")'>Allow the deletions</button></div>",
            escape(&serde_json::to_string(&question).unwrap_or_default()),
        );
    }
    if !library.skipped.is_empty() {
        let _ = write!(
            status,
            "<div class=muted>{} skipped: entries not readable (Spotify lists only playlists you own or collaborate on)</div>",
            library.skipped.len()
        );
    }
    let last_run = match &library.last_run {
        None => "none yet".to_string(),
        Some(run) => format!(
            "{} · {} · new {} changed {} deleted {} · {} requests · {:.1} s",
            escape(&run.mode),
            when(Some(run.finished_at), now),
            run.counters.new,
            run.counters.changed,
            run.counters.deleted,
            run.counters.requests,
            run.duration_ms as f64 / 1000.0,
        ),
    };
    let _ = write!(
        out,
        "<tr><td>{}<div class=muted>last success {}</div></td><td>{status}</td><td>{}<div class=muted>{}</div></td><td>{last_run}</td></tr>",
        escape(&library.title),
        when(library.last_success_at, now),
        library.items,
        escape(&counts_text(library)),
    );
}

fn pass_name(pass: crate::store::records::Pass) -> &'static str {
    match pass {
        crate::store::records::Pass::Incremental => "incremental",
        crate::store::records::Pass::Full => "full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(-30), "30 s ago");
        assert_eq!(relative(600), "in 10 min");
        assert_eq!(relative(-7200), "2.0 h ago");
    }
}
