//! The `keygate` command line (`docs/config.md`, "CLI").

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keygate::config::HmacScheme;

/// jemalloc, not glibc malloc: under the churn soak (reloads rebuilding the token cache,
/// connections opening and closing) glibc's arenas grew to ~2.4x the live heap over ~6 minutes
/// before levelling off; jemalloc's RSS stayed flat at about half (BENCHMARKS.md, "Soak").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "Authentication sidecar: authenticates every request per route and forwards trusted identity headers"
)]
struct Cli {
    /// Config file (for `run`, the default command).
    #[arg(long, short, global = true, env = "KEYGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Process-log format on stderr: json (default when stderr is not a terminal) or text.
    #[arg(long, global = true, value_parser = ["json", "text"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate a config and print a summary; exits non-zero with file:line and the problem.
    Check,
    /// Run with a built-in config and echo upstream, and print ready-to-paste curl commands.
    #[cfg(feature = "demo")]
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: String,
        /// Print only the self-check table, not the curl commands.
        #[arg(long)]
        quiet: bool,
    },
    /// Show how keygate would decide one request, without sending it anywhere; exits 0 when it
    /// would be allowed, 1 when denied. Credentials are never echoed.
    Explain {
        /// The request method.
        #[arg(short = 'X', long = "request", default_value = "GET")]
        method: String,
        /// A request header, `Name: value`. Repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body, for routes that read it (`bind_json`, `json_body` sources).
        #[arg(short = 'd', long = "data")]
        data: Option<String>,
        /// The request target: path and query, e.g. `/v1/users/u1/feeds/f?api_key=...`.
        target: String,
    },
    /// Mint credentials for testing.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read a secret on stdin and print its SHA-256 in hex (for `sha256` / `secret_sha256`).
    HashSecret,
    /// Add, list or delete revocations in the shared state (Redis, `shared_state`); every
    /// replica applies a change within a second.
    Revoke(Revocation),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// HMAC user token for a user id; the secret comes from KEYGATE_HMAC_SECRET.
    Hmac {
        #[arg(long)]
        user_id: String,
        #[arg(long, default_value = "hmac_sha256", value_parser = ["hmac_sha256", "sha256_concat"])]
        scheme: String,
    },
    /// A signed JWT. The algorithm follows the key type unless --alg is given.
    Jwt {
        /// Private key PEM file (RSA, EC P-256/P-384, Ed25519).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        kid: Option<String>,
        /// Extra claim, `name=value` (value parsed as JSON when it is JSON). Repeatable.
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime: 900, 900s, 15m, 1h.
        #[arg(long, default_value = "15m")]
        ttl: String,
        #[arg(long)]
        alg: Option<String>,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("keygate: {msg}");
    ExitCode::from(1)
}

/// The commands, one function each; an `Err` is printed as `keygate: ...` and exits 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli
        .config
        .clone()
        .ok_or("--config FILE (or KEYGATE_CONFIG) is required");
    let done = match cli.command.unwrap_or(Command::Run) {
        Command::Run => config
            .map_err(Into::into)
            .and_then(|c| run(c, &cli.log_format)),
        Command::Check => config.map_err(Into::into).and_then(check),
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            admin_listen,
            quiet,
        } => demo(listen, admin_listen, quiet, &cli.log_format),
        Command::Explain {
            method,
            headers,
            data,
            target,
        } => config
            .map_err(Into::into)
            .and_then(|c| explain(c, &method, &target, &headers, data.as_deref())),
        Command::Token(TokenCommand::Hmac { user_id, scheme }) => token_hmac(&user_id, &scheme),
        Command::Token(TokenCommand::Jwt {
            key,
            sub,
            kid,
            claims,
            ttl,
            alg,
        }) => token_jwt(&key, sub, kid.as_deref(), &claims, &ttl, alg.as_deref()),
        Command::Revoke(what) => return config.map_or_else(fail, |c| revoke(c, what)),
        Command::HashSecret => hash_secret(),
    };
    done.unwrap_or_else(fail)
}

/// `keygate run`: serves until SIGTERM / SIGINT (never returns once the config loads).
fn run(path: PathBuf, log_format: &Option<String>) -> Result<ExitCode, String> {
    keygate::logs::init(log_format.as_deref());
    keygate::access_log::init(keygate::access_log::Output::Stdout);
    let loaded = keygate::ruleset::load(&path).map_err(|e| e.to_string())?;
    keygate::server::run(loaded, Some(path))
}

/// `keygate check`: loads the config and prints its summary (warnings on stderr).
fn check(path: PathBuf) -> Result<ExitCode, String> {
    let loaded = keygate::ruleset::load(&path).map_err(|e| e.to_string())?;
    for w in loaded.rules.warnings() {
        eprintln!("warning: {w}");
    }
    println!("{}: ok ({})", path.display(), loaded.rules.summary());
    Ok(ExitCode::SUCCESS)
}

/// `keygate demo`: the built-in config and echo upstream; once the proxy listens, every
/// scenario once, the table, then the commands to paste.
#[cfg(feature = "demo")]
fn demo(
    listen: String,
    admin_listen: String,
    quiet: bool,
    log_format: &Option<String>,
) -> Result<ExitCode, String> {
    keygate::logs::init(Some(log_format.as_deref().unwrap_or("text")));
    keygate::access_log::init(keygate::access_log::Output::Stderr);
    let (rt, echo, examples) =
        keygate::demo::prepare(&listen, &admin_listen).map_err(|e| e.to_string())?;
    println!("keygate demo: proxy on http://{listen}, admin on http://{admin_listen} (/metrics, /healthz, /readyz), echo upstream on http://{echo}\n");
    std::thread::spawn(move || {
        use std::io::Write;
        let checked = keygate::demo::check::run(&listen, &examples);
        let mut out = keygate::demo::check::table(&checked);
        if !quiet {
            out += "\nPaste any of these into another terminal; Ctrl-C stops the demo.\n\n";
            for e in &examples {
                out += &format!(
                    "# expect: {}  ({})\n{}\n\n",
                    e.expect,
                    e.what,
                    e.curl(&format!("http://{listen}"))
                );
            }
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
    });
    keygate::server::run(rt, None)
}

/// `keygate explain`: exits 0 when the request would be allowed, 1 when denied.
fn explain(
    path: PathBuf,
    method: &str,
    target: &str,
    headers: &[String],
    body: Option<&str>,
) -> Result<ExitCode, String> {
    let loaded = keygate::ruleset::load(&path).map_err(|e| e.to_string())?;
    let revocations = keygate::revocation::Revocations::new(loaded.revocations, Vec::new());
    let req = keygate::explain::request(method, target, headers).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut out = String::new();
    let body = body.map(str::as_bytes);
    let explained = keygate::explain::explain(&loaded.rules, &revocations, req, body, &mut out);
    let allowed = rt.block_on(explained);
    print!("{out}");
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `keygate token hmac`: the secret comes from `KEYGATE_HMAC_SECRET`.
fn token_hmac(user_id: &str, scheme: &str) -> Result<ExitCode, String> {
    let secret = std::env::var("KEYGATE_HMAC_SECRET")
        .map_err(|_| "KEYGATE_HMAC_SECRET is not set".to_string())?;
    let scheme = if scheme == "sha256_concat" {
        HmacScheme::Sha256Concat
    } else {
        HmacScheme::HmacSha256
    };
    let mac = keygate::auth::hmac_token::compute(scheme, secret.as_bytes(), user_id.as_bytes());
    println!("{}", hex::encode(mac));
    Ok(ExitCode::SUCCESS)
}

/// `keygate token jwt`: `sub`, `iat`, `exp` (now + `ttl`) and the extra claims.
fn token_jwt(
    key: &std::path::Path,
    sub: String,
    kid: Option<&str>,
    claims: &[String],
    ttl: &str,
    alg: Option<&str>,
) -> Result<ExitCode, String> {
    let pem = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let (k, default_alg) = keygate::token::signing_key(&pem)?;
    let alg = match alg {
        Some(a) => a
            .parse()
            .map_err(|_| format!("unsupported algorithm {a}"))?,
        None => default_alg,
    };
    let ttl = keygate::token::parse_ttl(ttl)?;
    let now = keygate::token::now();
    let mut map = serde_json::Map::new();
    map.insert("sub".into(), sub.into());
    map.insert("iat".into(), now.into());
    map.insert("exp".into(), (now + ttl).into());
    for c in claims {
        let (k, v) = keygate::token::parse_claim(c)?;
        map.insert(k, v);
    }
    println!("{}", keygate::token::sign(&k, alg, kid, &map)?);
    Ok(ExitCode::SUCCESS)
}

/// `keygate revoke`'s arguments.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["sub", "jti", "credential", "list", "delete"])))]
struct Revocation {
    /// Revoke every credential of this user id.
    #[arg(long)]
    sub: Option<String>,
    /// With --sub: only credentials issued (iat) before this RFC 3339 instant.
    #[arg(long, requires = "sub")]
    issued_before: Option<String>,
    /// Revoke the JWT with this jti.
    #[arg(long)]
    jti: Option<String>,
    /// Revoke `authenticator/key-or-client` (or a whole authenticator).
    #[arg(long)]
    credential: Option<String>,
    /// Ignore the entry after this long (900, 15m, 24h, 7d); forever without it.
    #[arg(long, conflicts_with_all = ["list", "delete"])]
    ttl: Option<String>,
    /// Print the revocations in force, `ID JSON` per line.
    #[arg(long)]
    list: bool,
    /// Remove the revocation with this id (from --list).
    #[arg(long, value_name = "ID")]
    delete: Option<String>,
}

/// `keygate revoke`: exits 2 for a bad entry, and with `keygate::revoke::run`'s code otherwise.
fn revoke(path: PathBuf, what: Revocation) -> ExitCode {
    use keygate::revoke::Action;
    let action = match (what.list, what.delete) {
        (true, _) => Action::List,
        (_, Some(id)) => Action::Delete(id),
        _ => match keygate::revoke::entry(
            what.sub,
            what.issued_before.as_deref(),
            what.jti,
            what.credential,
            what.ttl.as_deref(),
        ) {
            Ok(e) => Action::Add(e),
            Err(e) => {
                eprintln!("keygate: revoke: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match keygate::revoke::run(&path, action) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err((code, msg)) => {
            eprintln!("keygate: {msg}");
            ExitCode::from(code)
        }
    }
}

/// `keygate hash-secret`: the SHA-256 of stdin (one trailing newline ignored), in hex.
fn hash_secret() -> Result<ExitCode, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())?;
    let secret = input.strip_suffix('\n').unwrap_or(&input);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    println!("{}", keygate::token::hash_hex(secret.as_bytes()));
    Ok(ExitCode::SUCCESS)
}
