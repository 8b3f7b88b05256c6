//! `epai model`: register custom ONNX models (checked with tract before they are stored, bytes
//! and all, so every replica sees them) and list the catalogue's custom models.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use epai_engine::onnx::OnnxModel;
use epai_store::{CustomModelRecord, NewCustomModel};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::GlobalArgs;
use crate::database;

/// Registered models larger than this are refused: every replica holds them in memory.
const MAX_MODEL_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Register a custom ONNX model (or a new version of one) for `POST /v1/models/NAME/predict`.
    Register {
        /// The model's name in the catalogue and in the predict URL.
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// The ONNX file: one float input of shape [batch, features], float outputs.
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// The features' names, comma-separated, in the order of the input's last axis.
        #[arg(long, value_delimiter = ',', required = true, value_parser = parse_name)]
        inputs: Vec<String>,
        /// What the model predicts, shown in `GET /v1/models`.
        #[arg(long)]
        description: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the registered custom models.
    List {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Names go into URLs and JSON keys: letters, digits, `_`, `-` and `.`, up to 64 of them.
fn parse_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, '_', '-' or '.'".to_owned())
    }
}

pub async fn run(global: &GlobalArgs, command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Register {
            name,
            file,
            inputs,
            description,
            json,
        } => {
            let model = prepare(name, &file, inputs, description)?;
            let db = database::open_migrated(global).await?;
            let store = db.store(global)?;
            let registered = store
                .as_service_role(async |s| {
                    s.register_custom_model(&model, chrono::Utc::now()).await
                })
                .await?;
            print(json, "model registered", std::slice::from_ref(&registered))?;
            db.close().await
        }
        ModelCommand::List { json } => {
            let db = database::open_migrated(global).await?;
            let store = db.store(global)?;
            let models = store
                .as_service_role(async |s| s.custom_models().await)
                .await?;
            print(json, "custom models", &models)?;
            db.close().await
        }
    }
}

/// Reads and checks the model: it must load with tract for exactly these inputs and run.
fn prepare(
    name: String,
    file: &std::path::Path,
    inputs: Vec<String>,
    description: Option<String>,
) -> anyhow::Result<NewCustomModel> {
    let mut unique = inputs.clone();
    unique.sort();
    unique.dedup();
    anyhow::ensure!(
        unique.len() == inputs.len(),
        "--inputs names a feature twice"
    );
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_MODEL_BYTES,
        "{} is {size} bytes; models up to {MAX_MODEL_BYTES} bytes are accepted",
        file.display()
    );
    let onnx = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let model = OnnxModel::load(&onnx, &inputs)
        .with_context(|| format!("{} cannot be registered", file.display()))?;
    let outputs = model
        .run(&vec![0.0; inputs.len()])
        .with_context(|| format!("{} cannot be registered", file.display()))?;
    let sha256 = Sha256::digest(&onnx)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let input_docs: Map<String, Value> = inputs
        .iter()
        .map(|input| (input.clone(), json!("number")))
        .collect();
    let output_docs: Map<String, Value> = outputs
        .iter()
        .map(|o| {
            let shape: Vec<String> = o.shape.iter().map(ToString::to_string).collect();
            (
                o.name.clone(),
                json!(format!("float tensor [{}]", shape.join(", "))),
            )
        })
        .collect();
    Ok(NewCustomModel {
        name,
        description,
        metadata: json!({
            "kind": "onnx",
            "trigger": "predict",
            "inputs": input_docs,
            "outputs": output_docs,
            "sha256": sha256,
            "size_bytes": onnx.len(),
        }),
        inputs,
        onnx,
        sha256,
    })
}

fn print(json: bool, headline: &str, models: &[CustomModelRecord]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<Value> = models
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "description": m.description,
                    "version": m.version,
                    "inputs": m.inputs,
                    "sha256": m.sha256,
                    "size_bytes": m.size_bytes,
                    "registered_at": m.registered_at,
                })
            })
            .collect();
        writeln!(out, "{}", Value::Array(list))?;
        return Ok(());
    }
    writeln!(out, "{headline}")?;
    if models.is_empty() {
        writeln!(out, "  none; register one with epai model register")?;
    }
    for m in models {
        writeln!(
            out,
            "  {} v{}  inputs {}  {} bytes  sha256 {}  registered {}",
            m.name,
            m.version,
            m.inputs.join(","),
            m.size_bytes,
            &m.sha256[..12],
            m.registered_at.format("%Y-%m-%d %H:%M UTC")
        )?;
        if let Some(description) = &m.description {
            writeln!(out, "    {description}")?;
        }
    }
    Ok(())
}
