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
    #[command(group(clap::ArgGroup::new("what").required(true).args(["sub", "jti", "credential", "list", "delete"])))]
    Revoke {
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
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = || {
        cli.config
            .clone()
            .ok_or("--config FILE (or KEYGATE_CONFIG) is required")
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            keygate::logs::init(cli.log_format.as_deref());
            keygate::access_log::init(keygate::access_log::Output::Stdout);
            let path = match config() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match keygate::ruleset::load(&path) {
                Ok(loaded) => keygate::server::run(loaded, Some(path)),
                Err(e) => fail(e),
            }
        }
        Command::Check => {
            let path = match config() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match keygate::ruleset::load(&path) {
                Ok(keygate::ruleset::Loaded { rules: rt, .. }) => {
                    for w in rt.warnings() {
                        eprintln!("warning: {w}");
                    }
                    println!("{}: ok ({})", path.display(), rt.summary());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            admin_listen,
            quiet,
        } => {
            keygate::logs::init(Some(cli.log_format.as_deref().unwrap_or("text")));
            keygate::access_log::init(keygate::access_log::Output::Stderr);
            let (rt, echo, examples) = match keygate::demo::prepare(&listen, &admin_listen) {
                Ok(x) => x,
                Err(e) => return fail(e),
            };
            println!("keygate demo: proxy on http://{listen}, admin on http://{admin_listen} (/metrics, /healthz, /readyz), echo upstream on http://{echo}\n");
            // Once the proxy listens: every scenario once, the table, then the commands.
            std::thread::spawn(move || {
                use std::io::Write;
                let outcomes = keygate::demo::check::run(&listen, &examples);
                let mut out = keygate::demo::check::table(&outcomes);
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
        Command::Explain {
            method,
            headers,
            data,
            target,
        } => {
            let path = match config() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let (rules, revocations) = match keygate::ruleset::load(&path) {
                Ok(loaded) => (
                    loaded.rules,
                    keygate::revocation::Revocations::new(loaded.revocations, Vec::new()),
                ),
                Err(e) => return fail(e),
            };
            let req = match keygate::explain::request(&method, &target, &headers) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let mut out = String::new();
            let body = data.as_deref().map(str::as_bytes);
            let allowed = rt.block_on(keygate::explain::explain(
                &rules,
                &revocations,
                req,
                body,
                &mut out,
            ));
            print!("{out}");
            if allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Token(TokenCommand::Hmac { user_id, scheme }) => {
            let Ok(secret) = std::env::var("KEYGATE_HMAC_SECRET") else {
                return fail("KEYGATE_HMAC_SECRET is not set");
            };
            let scheme = if scheme == "sha256_concat" {
                HmacScheme::Sha256Concat
            } else {
                HmacScheme::HmacSha256
            };
            let mac =
                keygate::auth::hmac_token::compute(scheme, secret.as_bytes(), user_id.as_bytes());
            println!("{}", hex::encode(mac));
            ExitCode::SUCCESS
        }
        Command::Token(TokenCommand::Jwt {
            key,
            sub,
            kid,
            claims,
            ttl,
            alg,
        }) => {
            let run = || -> Result<String, String> {
                let pem =
                    std::fs::read_to_string(&key).map_err(|e| format!("{}: {e}", key.display()))?;
                let (k, default_alg) = keygate::token::signing_key(&pem)?;
                let alg = match alg {
                    Some(a) => a
                        .parse()
                        .map_err(|_| format!("unsupported algorithm {a}"))?,
                    None => default_alg,
                };
                let ttl = keygate::token::parse_ttl(&ttl)?;
                let now = keygate::token::now();
                let mut map = serde_json::Map::new();
                map.insert("sub".into(), sub.into());
                map.insert("iat".into(), now.into());
                map.insert("exp".into(), (now + ttl).into());
                for c in &claims {
                    let (k, v) = keygate::token::parse_claim(c)?;
                    map.insert(k, v);
                }
                keygate::token::sign(&k, alg, kid.as_deref(), &map)
            };
            match run() {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Revoke {
            sub,
            issued_before,
            jti,
            credential,
            ttl,
            list,
            delete,
        } => {
            use keygate::revoke::Action;
            let path = match config() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let action = match (list, delete) {
                (true, _) => Action::List,
                (_, Some(id)) => Action::Delete(id),
                _ => match keygate::revoke::entry(
                    sub,
                    issued_before.as_deref(),
                    jti,
                    credential,
                    ttl.as_deref(),
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
        Command::HashSecret => {
            let mut input = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut input) {
                return fail(e);
            }
            let secret = input.strip_suffix('\n').unwrap_or(&input);
            let secret = secret.strip_suffix('\r').unwrap_or(secret);
            println!("{}", keygate::token::hash_hex(secret.as_bytes()));
            ExitCode::SUCCESS
        }
    }
}
