//! `toolgate schema`: the JSON Schema of policy and test files, for editors.

use std::process::ExitCode;

use toolgate_policy::{json_schema, SchemaForm};

use crate::cli::{SchemaArgs, SchemaFormArg};

pub fn run(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    let form = match args.form {
        None => SchemaForm::Any,
        Some(SchemaFormArg::Intercept) => SchemaForm::Intercept,
        Some(SchemaFormArg::Policylayer) => SchemaForm::PolicyLayer,
        Some(SchemaFormArg::Test) => SchemaForm::Test,
    };
    let schema = json_schema(form).map_err(|e| anyhow::anyhow!("the schema is incomplete: {e}"))?;
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
