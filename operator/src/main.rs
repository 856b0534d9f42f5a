use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use palisade_policy::render_files;

/// Palisade's operator: reconciles DatabasePolicy and MaskingRule resources into the
/// rendered policies sidecars enforce, and injects the sidecar into pods that opt in.
#[derive(Parser)]
#[command(name = "palisade-operator", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (on the elected leader) and the sidecar-injection webhook (on every
    /// replica) in a cluster, until SIGTERM.
    Run(Box<palisade_operator::run::RunArgs>),
    /// Print the CustomResourceDefinitions (DatabasePolicy, MaskingRule, ApprovalRequest) as
    /// multi-document YAML: what `crds/` holds and the chart installs.
    Crds {
        /// Write one file per CRD (`<name>.yaml`) into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Print the rendered policy JSON that sidecars would enforce, without a cluster.
    Render {
        /// DatabasePolicy and MaskingRule YAML files (multi-document files are fine).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1.., value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Render { files } => render(&files),
        Command::Crds { output_dir } => crds(output_dir.as_deref()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade-operator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn render(files: &[PathBuf]) -> anyhow::Result<()> {
    let rendered = render_files(files)?;
    // One policy prints as its document (what policy.json holds); several as an array.
    let out = if rendered.len() == 1 {
        rendered[0].to_json().context("serialising")?
    } else {
        serde_json::to_string_pretty(&rendered).context("serialising")?
    };
    write_stdout(&format!("{out}\n"))
}

/// Writes to stdout; a reader that went away (`| head`) ends the output quietly instead of
/// a panic, as Unix tools do.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn crds(output_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use palisade_policy::crd::{crd_file, crd_file_name};
    let Some(dir) = output_dir else {
        return write_stdout(&palisade_policy::crds_yaml()?);
    };
    for crd in palisade_policy::crds()? {
        let path = dir.join(crd_file_name(&crd));
        std::fs::write(&path, crd_file(&crd)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn run(args: palisade_operator::run::RunArgs) -> anyhow::Result<()> {
    // rustls needs one process-wide crypto provider; kube and the webhook share it. An
    // error means one is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(palisade_operator::run::run(args))
}
