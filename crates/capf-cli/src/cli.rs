//! The command line, as clap sees it.

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Parser, Subcommand};

use crate::commands;

/// CAPF: the Certificate Authority Proxy Function for Cisco IP phones.
///
/// Issues, replaces, retrieves and deletes the phones' locally significant
/// certificates (LSCs) over the CAPF protocol (TCP 3804, TLS).
#[derive(Debug, Parser)]
#[command(
    name = "capf",
    version = VERSION.as_str(),
    after_help = "Examples:\n  \
        capf init                                    create ./capf-data (CAPF key, certificate, database)\n  \
        capf serve                                   serve phones on 0.0.0.0:3804\n  \
        capf device add SEP001122334455 --operation install --generate-string\n  \
        capf device show SEP001122334455\n  \
        capf completions bash > /etc/bash_completion.d/capf\n  \
        capf man /usr/local/share/man/man1           capf.1, capf-serve.1, capf-device-add.1, ...\n\n\
        Every command takes --data-dir DIR (default: $CAPF_DATA_DIR, else ./capf-data).\n\
        Several servers on one PostgreSQL database: add --database postgres://... (or\n\
        $CAPF_DATABASE_URL) to every command; the data directory still holds the CAPF key."
)]
pub(crate) struct Cli {
    /// The data directory: CAPF key and certificate, database, traces.
    #[arg(
        long,
        global = true,
        env = "CAPF_DATA_DIR",
        default_value = "capf-data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,

    /// Keep the devices in this PostgreSQL database instead of the data
    /// directory's SQLite file, so that several servers share them:
    /// postgres://USER@HOST:PORT/DBNAME (add ?sslmode=require for TLS).
    #[arg(
        long,
        global = true,
        env = "CAPF_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) database: Option<String>,

    /// CA certificates (PEM) to check the database server's certificate
    /// against with sslmode=require (default: the system's CA bundle).
    #[arg(long, global = true, env = "CAPF_DATABASE_CA", value_name = "FILE")]
    pub(crate) database_ca: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The version with the optional features this build has, e.g.
/// `0.1.0 (features: legacy-tls)`.
pub(crate) static VERSION: LazyLock<String> = LazyLock::new(|| {
    let features: Vec<&str> = [("legacy-tls", cfg!(feature = "legacy-tls"))]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    let features = if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(", ")
    };
    format!("{} (features: {features})", env!("CARGO_PKG_VERSION"))
});

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the data directory: CAPF key (mode 0600), certificate, its <hash>.0 copy, database.
    Init(commands::init::InitArgs),
    /// Serve phones until stopped (Ctrl-C or SIGTERM); initialises an empty data directory first.
    Serve(commands::serve::ServeArgs),
    /// Add, change, show, list, import and remove devices.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
            capf device add SEP001122334455 --operation install --generate-string\n  \
            capf device set SEP001122334455 --auth-mode null-string --operation install\n  \
            capf device show SEP001122334455 --json\n  \
            capf device import phones.csv"
    )]
    Device(commands::device::DeviceCommand),
    /// Find devices by name, description, string, LSC status, operation, status.
    Find(commands::find::FindArgs),
    /// Read the audit trail: operator changes, phone sessions, issued certificates.
    Audit(commands::audit::AuditArgs),
    /// Write the CAPF report as CSV.
    Report(commands::report::ReportArgs),
    /// Show or change service parameters.
    #[command(subcommand)]
    Params(commands::params::ParamsCommand),
    /// Show and export the CAPF certificate; issue an LSC offline.
    #[command(subcommand)]
    Ca(commands::ca::CaCommand),
    /// Back the database up to a file (safe while the server runs).
    Backup(commands::backup::BackupArgs),
    /// Restore the database from a backup file.
    Restore(commands::backup::RestoreArgs),
    /// Act as a phone against any CAPF server (a phone simulator).
    #[command(subcommand)]
    Phone(commands::phone::PhoneCommand),
    /// Decode CAPF bytes.
    #[command(subcommand)]
    Wire(commands::wire::WireCommand),
    /// Load generator: many simulated phones enrolling at once; throughput, latency, server CPU and memory.
    #[command(after_help = "Examples:\n  \
        capf --data-dir /tmp/lg loadgen --spawn-server --phones 5000 --concurrency 64\n  \
        capf --data-dir /srv/capf loadgen --server 127.0.0.1:3804 --phones 1000 --auth null-string\n  \
        capf --data-dir /tmp/lg loadgen --spawn-server --hold --phones 10000\n  \
        capf loadgen --server capf.example:3804 --devices phones.csv --no-schedule\n  \
        capf --data-dir /tmp/lg loadgen --spawn-server --auth lsc --phones 2000     re-enrollment by LSC\n  \
        capf --data-dir /tmp/lg loadgen --spawn-server --auth mic --key rsa2048     enrollment by MIC\n\n\
        Figures go to stdout (--json for a script); progress to stderr.")]
    Loadgen(commands::loadgen::LoadgenArgs),
    /// Build, show and check phone trust lists (ITLFile.tlv, CTLFile.tlv) that make phones trust this CAPF.
    #[command(
        subcommand,
        name = "trust-list",
        after_help = "Examples:\n  \
            capf trust-list build --out ITLFile.tlv --sast sast.pem        with this CAPF's certificate\n  \
            capf trust-list show ITLFile.tlv\n  \
            capf trust-list verify new/ITLFile.tlv --trust sast.pem"
    )]
    TrustList(commands::trust_list::TrustListCommand),
    /// Phone configuration files: signed, encrypted for the phone's LSC, and the CAPF list.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
            capf config sign SEP001122334455.cnf.xml --tftp tftp.pem\n  \
            capf config encrypt SEP001122334455.cnf.xml --tftp tftp.pem --device SEP001122334455\n  \
            capf config decrypt SEP001122334455.cnf.xml.enc.sgn --key phone-lsc.pem\n  \
            capf config capf-list --server capf1.example --server capf2.example --device SEP001122334455"
    )]
    Config(commands::config::ConfigCommand),
    /// Operator accounts and API tokens of the console's REST API (capf-admin).
    #[command(
        subcommand,
        after_help = "Examples:\n  \
            capf admin user add alice --role admin                 asks for the password twice\n  \
            printf '%s\\n' \"$PW\" | capf admin user add bob --role helpdesk --password-stdin\n  \
            capf admin user list --json\n  \
            capf admin token create --name nightly-report --role read-only\n\n\
            Roles: read-only sees devices, the report and the audit log (never strings);\n\
            helpdesk also schedules operations and generates strings; admin also changes\n\
            parameters, removes devices and manages accounts and tokens."
    )]
    Admin(commands::admin::AdminCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
        capf completions bash > /etc/bash_completion.d/capf\n  \
        capf completions zsh > \"${fpath[1]}/_capf\"\n  \
        capf completions fish > ~/.config/fish/completions/capf.fish\n  \
        source <(capf completions bash)                  this shell only")]
    Completions(commands::completions::CompletionsArgs),
    /// Write man pages for capf and every subcommand (capf.1, capf-device-add.1, ...) into a directory.
    #[command(after_help = "Examples:\n  \
        capf man /usr/local/share/man/man1 && mandb\n  \
        capf man /tmp/capf-man && man /tmp/capf-man/capf-serve.1")]
    Man(commands::man::ManArgs),
}
