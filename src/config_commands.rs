//! `synchub config …`: validate and show pipelines and datastores.

use std::path::PathBuf;
use std::process::ExitCode;

use planner::config::PipelineFile;
use planner::datastores::redact_url_password;
use planner::Datastores;

use crate::{fail, output, ConfigCommand, OutputFormat};

pub(crate) async fn config(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Validate {
            files,
            datastores,
            output,
        } => {
            let json = output == OutputFormat::Json;
            let mut verdicts: Vec<(PathBuf, Result<String, Vec<String>>)> = Vec::new();
            for f in &files {
                verdicts.push((f.clone(), validate_file(f, datastores.as_deref()).await));
            }
            let ok = verdicts.iter().all(|(_, v)| v.is_ok());
            if json {
                let files: Vec<serde_json::Value> = verdicts
                    .iter()
                    .map(|(f, v)| match v {
                        Ok(what) => serde_json::json!({"file": f.display().to_string(), "ok": true, "what": what}),
                        Err(errors) => serde_json::json!({"file": f.display().to_string(), "ok": false, "errors": errors}),
                    })
                    .collect();
                println!("{}", serde_json::json!({"ok": ok, "files": files}));
            } else {
                for (f, v) in &verdicts {
                    match v {
                        Ok(what) => println!("{}: ok ({what})", f.display()),
                        Err(errors) => {
                            for e in errors {
                                eprintln!("{e}");
                            }
                        }
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        ConfigCommand::Show {
            file,
            datastores,
            output,
        } => match engine::load_pipeline(&file, datastores.as_deref()).await {
            Ok(p) if output == OutputFormat::Json => {
                println!("{}", output::pipeline_json(&p));
                ExitCode::SUCCESS
            }
            Ok(p) => {
                print!("{}", output::show_pipeline(&p));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        ConfigCommand::List { config_dir, output } => {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(&config_dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                            && p.file_stem()
                                .is_some_and(|s| s != "datastores" && s != "global_config")
                    })
                    .collect(),
                Err(e) => {
                    eprintln!("error: {}: cannot read folder: {e}", config_dir.display());
                    return ExitCode::from(2);
                }
            };
            files.sort();
            let mut listed = Vec::new();
            for f in files {
                match PipelineFile::read(&f) {
                    Ok(p) => {
                        let strategies: Vec<String> = p
                            .strategies
                            .iter()
                            .map(|s| format!("{}({})", s.name, s.kind.as_str()))
                            .collect();
                        if output == OutputFormat::Json {
                            listed.push(serde_json::json!({
                                "name": p.name,
                                "enabled": p.enabled,
                                "strategies": p.strategies.iter().map(|s| serde_json::json!({"name": s.name, "type": s.kind.as_str(), "enabled": s.enabled})).collect::<Vec<_>>(),
                                "file": f.display().to_string(),
                            }));
                            continue;
                        }
                        println!(
                            "{}\t{}\t{}\t{}",
                            p.name,
                            if p.enabled { "enabled" } else { "disabled" },
                            if strategies.is_empty() {
                                "full".to_string()
                            } else {
                                strategies.join(",")
                            },
                            f.display()
                        );
                    }
                    Err(e) if output == OutputFormat::Json => listed.push(serde_json::json!({
                        "file": f.display().to_string(),
                        "invalid": e.to_string(),
                    })),
                    Err(e) => println!("?\tinvalid\t-\t{}\t{e}", f.display()),
                }
            }
            if output == OutputFormat::Json {
                println!("{}", serde_json::json!({"pipelines": listed}));
            }
            ExitCode::SUCCESS
        }
    }
}

/// `config validate` of one file: what it is (the pipeline's name, or how
/// many datastores), or every problem found.
async fn validate_file(
    f: &std::path::Path,
    datastores: Option<&std::path::Path>,
) -> Result<String, Vec<String>> {
    // One entry a problem: a config error lists its problems a line each.
    let masked = |e: &dyn std::fmt::Display| -> Vec<String> {
        redact_url_password(&e.to_string())
            .lines()
            .map(str::to_string)
            .collect()
    };
    match planner::global::ConfigFileKind::of(f) {
        // A datastores file is checked whole: every datastore in it.
        planner::global::ConfigFileKind::Datastores => {
            return Datastores::load(f, &connectors::registry::types())
                .map(|ds| format!("{} datastores", ds.stores.len()))
                .map_err(|e| masked(&e));
        }
        planner::global::ConfigFileKind::Global => {
            return planner::global::GlobalConfig::load(f)
                .map(|_| "global config".to_string())
                .map_err(|e| masked(&e));
        }
        planner::global::ConfigFileKind::Pipeline => {}
    }
    let p = engine::load_pipeline(f, datastores)
        .await
        .map_err(|e| masked(&e))?;
    // Every strategy compiled, as `run` would: a field that parses but is
    // not supported yet is refused here too.
    let strategies: Vec<Option<&str>> = if p.strategies.is_empty() {
        vec![None]
    } else {
        p.strategies.iter().map(|s| Some(s.name.as_str())).collect()
    };
    let refused: Vec<String> = strategies
        .into_iter()
        .filter_map(|s| planner::Plan::compile(&p, s).err())
        .flat_map(|e| masked(&e))
        .collect();
    if refused.is_empty() {
        Ok(p.name)
    } else {
        Err(refused)
    }
}
