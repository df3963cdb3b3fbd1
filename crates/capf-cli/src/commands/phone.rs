//! `capf phone install|fetch|delete|run`: act as a phone against any CAPF
//! server (a phone simulator and CAPF client).
//!
//! The server drives: the phone authenticates and then does whatever the
//! server scheduled. The subcommand says what the operator expects, and the
//! command fails when something else happened.

mod files;
mod session;
pub(crate) mod walk;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::{Failure, Outcome};

const AFTER_HELP: &str = "\
Files:
  --capf-cert    the CAPF certificate(s) the phone trusts (its ITL entry): a PEM file
                 with one or more certificates, or a directory of <hash>.0 / *.pem files
                 (e.g. DATA_DIR of `capf init`, which holds capf.pem and its <hash>.0 copy)
  --lsc, --mic   a PEM file with the certificate and its PKCS#8 private key, the format
                 --cert-out writes
  --cert-out     the phone's LSC store: read as the current LSC (returned by a fetch,
                 and the LSC a pending operation resumed from --state authenticates
                 with when --lsc is not given), replaced by an install
                 (certificate PEM then PKCS#8 key PEM, mode 0600), removed by a delete
  --state        the phone's flash: while an operation is pending it keeps the
                 authentication mode it started with, and a later run uses that mode
                 whatever the flags say (the credentials still come from the flags,
                 or the LSC from --cert-out); cleared when the operation completes.
                 Delete the file to start afresh. Mode 0600.
  Both files are rewritten whole, in one step, by design (no --force needed); a
  symbolic link is never written through (refused before the session starts).

Several servers: give --server up to five times, like the CAPF list of a phone's
configuration. Each attempt tries them in order from the current one; a server
that cannot be reached (connection refused or timed out, TLS handshake failed)
is skipped at once for the next. The result names the server the operation
finished on.

Retries: after a communication failure (no server reached, timeout, connection
lost) the phone tries --retries more times, --retry-interval seconds apart. A
session that broke on one server is retried on the next one in the list.
Ctrl-C stops the operation: nothing more is sent (exit 1).

Exit status: 0 when the server did what the subcommand names (`run`: anything
but a failure), 1 otherwise, 2 for a usage error.";

/// `capf phone` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PhoneCommand {
    /// Expect the server to install or upgrade the LSC: generate a key, store the certificate.
    #[command(after_help = format!("Examples:\n  \
        capf phone install --server capf.example.com --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --auth-string 12345678 --cert-out SEP001122334455-lsc.pem\n  \
        capf phone install --server 10.0.0.5:3804 --capf-cert /etc/capf/certs --device SEP001122334455 \\\n      \
            --mic mic.pem --cert-out lsc.pem --state phone.state\n  \
        capf phone install --server capf --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --lsc lsc.pem --cert-out lsc.pem                 upgrade, authenticated by the old LSC\n  \
        capf phone install --server capf1 --server capf2 --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --auth-string 12345678 --cert-out lsc.pem        capf2 when capf1 cannot be reached\n\n{AFTER_HELP}"))]
    Install(PhoneArgs),
    /// Expect the server to fetch (troubleshoot) the LSC: the phone sends the one in --cert-out.
    #[command(after_help = format!("Examples:\n  \
        capf phone fetch --server capf --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --lsc lsc.pem --cert-out lsc.pem                 authenticated by its LSC\n  \
        capf phone fetch --server capf --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --auth-string 12345678 --cert-out lsc.pem\n  \
        capf phone fetch --server capf --capf-cert capf.pem --device SEP001122334455 --lsc lsc.pem --json\n\n\
        Without --auth-string, --lsc or --mic the phone sends the null string, which a device\n\
        whose authentication mode wants its LSC refuses.\n\n{AFTER_HELP}"))]
    Fetch(PhoneArgs),
    /// Expect the server to delete the LSC: the phone removes --cert-out.
    #[command(after_help = format!("Examples:\n  \
        capf phone delete --server capf --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --auth-string 4711 --cert-out lsc.pem\n\n{AFTER_HELP}"))]
    Delete(PhoneArgs),
    /// Do whatever the server scheduled (install, fetch, delete or nothing), like a real phone.
    #[command(after_help = format!("Examples:\n  \
        capf phone run --server capf --capf-cert capf.pem --device SEP001122334455 --cert-out lsc.pem\n  \
        capf phone run --server capf:3804 --capf-cert capf.pem --device SEP001122334455 \\\n      \
            --timeout 10 --retries 0 --json\n\n{AFTER_HELP}"))]
    Run(PhoneArgs),
}

/// What the operator expects the server to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    Install,
    Fetch,
    Delete,
    Anything,
}

impl Expected {
    fn name(self) -> &'static str {
        match self {
            Expected::Install => "install",
            Expected::Fetch => "fetch",
            Expected::Delete => "delete",
            Expected::Anything => "run",
        }
    }
}

/// The flags every `capf phone` subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct PhoneArgs {
    /// The CAPF server: HOST or HOST:PORT (port 3804 by default; IPv6 as [ADDR]:PORT).
    /// Up to 5 times: the servers are tried in that order.
    #[arg(long, value_name = "HOST[:PORT]", required = true)]
    server: Vec<String>,
    /// The CAPF certificate(s) to trust: a PEM file, or a directory of <hash>.0 / *.pem files.
    #[arg(long, value_name = "FILE|DIR")]
    capf_cert: PathBuf,
    /// The phone's device name (DEVICE_NAME), e.g. SEP001122334455.
    #[arg(long, value_name = "NAME")]
    device: String,
    /// Authenticate by authentication string (4 to 10 digits; other text is sent as is).
    #[arg(long, value_name = "DIGITS", conflicts_with_all = ["lsc", "mic"])]
    auth_string: Option<String>,
    /// Authenticate by existing certificate: this LSC (PEM certificate + PKCS#8 key).
    #[arg(long, value_name = "FILE", conflicts_with = "mic")]
    lsc: Option<PathBuf>,
    /// Authenticate by existing certificate: this MIC (PEM certificate + PKCS#8 key).
    #[arg(long, value_name = "FILE")]
    mic: Option<PathBuf>,
    /// With --lsc or --mic: also send SUDI_DATA from this certificate and key (PEM).
    #[arg(long, value_name = "FILE")]
    sudi: Option<PathBuf>,
    /// The phone's LSC file: current LSC in, new LSC out (certificate + PKCS#8 key, mode 0600).
    #[arg(long, value_name = "FILE")]
    cert_out: Option<PathBuf>,
    /// The phone's persistent state: pending authentication mode and attempts (mode 0600).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Seconds to wait for each server message (and for connect + TLS handshake).
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Seconds between attempts after a communication failure (30 on a phone).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    retry_interval: u64,
    /// Attempts after the first one fails to communicate (3 on a phone).
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// Print the result as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// TLS: modern (TLS 1.2/1.3) or legacy (TLS 1.0 with AES128-SHA only, like a
    /// 7900-series phone; needs a legacy-tls build).
    #[arg(long, value_name = "KIND", default_value = "modern", value_parser = ["modern", "legacy"])]
    tls: String,
}

pub(crate) fn run(command: PhoneCommand) -> Result<Outcome, Failure> {
    let (expected, args) = match command {
        PhoneCommand::Install(args) => (Expected::Install, args),
        PhoneCommand::Fetch(args) => (Expected::Fetch, args),
        PhoneCommand::Delete(args) => (Expected::Delete, args),
        PhoneCommand::Run(args) => (Expected::Anything, args),
    };
    if args.sudi.is_some() && args.lsc.is_none() && args.mic.is_none() {
        return Err(Failure::usage("--sudi needs --lsc or --mic"));
    }
    if args.device.trim().is_empty() {
        return Err(Failure::usage("--device must not be empty"));
    }
    let servers = walk::ServerList::parse(&args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(session::run(expected, args, servers))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address, with
/// the CAPF port added when none is given.
fn server_address(server: &str) -> Result<String, Failure> {
    let server = server.trim();
    let port = capf_server::CAPF_PORT;
    if server.is_empty() {
        return Err(Failure::usage("--server must not be empty"));
    }
    Ok(if server.starts_with('[') {
        if server.contains("]:") {
            server.to_owned()
        } else {
            format!("{server}:{port}")
        }
    } else {
        match server.matches(':').count() {
            0 => format!("{server}:{port}"),
            1 => server.to_owned(),
            _ => format!("[{server}]:{port}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::server_address;

    #[test]
    fn default_port_is_added() {
        let port = capf_server::CAPF_PORT;
        assert_eq!(server_address("capf").ok(), Some(format!("capf:{port}")));
        assert_eq!(server_address("capf:4000").ok(), Some("capf:4000".into()));
        assert_eq!(server_address("[::1]").ok(), Some(format!("[::1]:{port}")));
        assert_eq!(server_address("[::1]:99").ok(), Some("[::1]:99".into()));
        assert_eq!(server_address("::1").ok(), Some(format!("[::1]:{port}")));
        assert!(server_address(" ").is_err());
    }
}
