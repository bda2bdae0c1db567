//! `inlet check`: every mistake a deployment can hold, found before it costs data, each with
//! what to do about it: settings, the routing file, each schema, each schema against its
//! table, each table's properties against its settings, and the queues and function the
//! settings name.

use std::collections::HashMap;

use serde::Serialize;

use crate::commit::evolution::schema_fits_table;
use crate::commit::keep_properties;
use crate::commit::table::open_table;
use crate::config::{Settings, storage_options_from_env};
use crate::context::load_schema;
use crate::error::{Error, Result};
use crate::properties::TableProperties;
use crate::routes::Routes;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`settings`, `web: schema`, `queue INLET_QUEUE_URL`, ...).
    pub subject: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found, and for a problem how to fix it.
    pub detail: String,
}

impl Finding {
    fn ok(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { subject: subject.into(), ok: true, detail: detail.into() }
    }

    fn problem(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { subject: subject.into(), ok: false, detail: detail.into() }
    }
}

/// Checks the deployment the settings in `lookup` describe (the environment, with the
/// command's overrides), reaching S3, SQS and Lambda through `sdk`.
pub async fn check(lookup: impl Fn(&str) -> Option<String>, sdk: &aws_config::SdkConfig) -> Vec<Finding> {
    let s3 = crate::aws::s3_client(sdk);
    let mut findings = Vec::new();
    let routes = match Routes::from_lookup(&lookup, |location| crate::routes::read_routes(&s3, location)).await {
        Ok(routes) => routes,
        Err(err) => {
            findings.push(Finding::problem("settings", err.to_string()));
            return findings;
        }
    };
    let described = match lookup("INLET_ROUTES").filter(|value| !value.trim().is_empty()) {
        Some(location) => format!("{} routes from {location}", routes.len()),
        None => "one table (no INLET_ROUTES)".to_string(),
    };
    findings.push(Finding::ok("settings", described));
    let storage_options = storage_options_from_env();
    for (route, settings) in routes.iter() {
        let name = &route.name;
        let schema = match load_schema(&settings.schema_location, &s3, settings.layout.clone()).await {
            Ok(schema) => {
                findings.push(Finding::ok(format!("{name}: schema"), settings.schema_location.clone()));
                schema
            }
            Err(err) => {
                findings.push(Finding::problem(format!("{name}: schema"), err.to_string()));
                continue;
            }
        };
        findings.push(match table_finding(name, &settings.table_uri, &schema, &storage_options).await {
            Ok(finding) => finding,
            Err(err) => {
                Finding::problem(format!("{name}: table"), format!("{} cannot be read: {err}", settings.table_uri))
            }
        });
        if let Ok(Some(finding)) = properties_finding(name, settings, &storage_options).await {
            findings.push(finding);
        }
    }
    for variable in ["INLET_QUEUE_URL", "INLET_DLQ_URL", "INLET_ISOLATION_QUEUE_URL"] {
        if let Some(url) = lookup(variable).filter(|value| !value.trim().is_empty()) {
            let sqs = crate::aws::sqs_client(sdk);
            findings.push(match crate::aws::queue_depth(&sqs, &url).await {
                Ok(depth) => Finding::ok(format!("queue {variable}"), format!("{url}: {depth} messages")),
                Err(err) => Finding::problem(format!("queue {variable}"), format!("{err} (check {variable})")),
            });
        }
    }
    if let Some(function) = lookup("INLET_COMPACTOR_FUNCTION").filter(|value| !value.trim().is_empty()) {
        let lambda = aws_sdk_lambda::Client::new(sdk);
        findings.push(match lambda.get_function().function_name(&function).send().await {
            Ok(_) => Finding::ok("function INLET_COMPACTOR_FUNCTION", function),
            Err(err) => Finding::problem(
                "function INLET_COMPACTOR_FUNCTION",
                format!(
                    "{function}: {} (check INLET_COMPACTOR_FUNCTION)",
                    aws_sdk_lambda::error::DisplayErrorContext(&err)
                ),
            ),
        });
    }
    findings
}

/// Whether the table at `table_uri` can take rows of `schema` ([`schema_fits_table`]), as a
/// finding; `Err` when the table cannot be read at all, which is no finding about the schema.
async fn table_finding(
    name: &str,
    table_uri: &str,
    schema: &crate::schema::TableSchema,
    storage_options: &std::collections::HashMap<String, String>,
) -> Result<Finding> {
    let fit = schema_fits_table(table_uri, schema, storage_options).await?;
    Ok(Finding { subject: format!("{name}: table"), ok: fit.fits, detail: fit.detail })
}

/// The properties of the table at `table_uri` that differ from `wanted`: (name, the table's
/// value, the wanted one); `None` when there is no table yet.
pub async fn property_drift(
    table_uri: &str,
    storage_options: &HashMap<String, String>,
    wanted: &TableProperties,
) -> Result<Option<Vec<(String, Option<String>, String)>>> {
    let url = url::Url::parse(table_uri).map_err(|err| Error::Config(format!("table URI {table_uri}: {err}")))?;
    let table = open_table(&url, storage_options).await?;
    if table.version().is_none() {
        return Ok(None);
    }
    Ok(Some(wanted.drift(table.snapshot()?.metadata().configuration())))
}

/// Whether the table keeps the properties its settings ask for, as a finding (none when
/// there is no table yet: it is created with them).
async fn properties_finding(
    name: &str,
    settings: &Settings,
    storage_options: &HashMap<String, String>,
) -> Result<Option<Finding>> {
    let wanted = settings.table_properties();
    let Some(drift) = property_drift(&settings.table_uri, storage_options, &wanted).await? else { return Ok(None) };
    let subject = format!("{name}: table properties");
    if drift.is_empty() {
        let listed: Vec<String> = wanted.iter().map(|(name, value)| format!("{name}={value}")).collect();
        return Ok(Some(Finding::ok(subject, listed.join(", "))));
    }
    let differences: Vec<String> = drift
        .iter()
        .map(|(name, has, wants)| {
            format!("{name} is {} where the settings say {wants}", has.as_deref().unwrap_or("unset"))
        })
        .collect();
    Ok(Some(Finding::problem(
        subject,
        format!(
            "{} (INLET_CHECKPOINT_INTERVAL, INLET_LOG_RETENTION_DAYS and INLET_TABLE_PROPERTIES): the compactor's next \
             run sets them, `inlet check --apply-properties` sets them now",
            differences.join("; ")
        ),
    )))
}

/// Sets the properties of the table at `table_uri` that differ from `wanted`, in one
/// metadata commit (a compactor racing it retries from it); the ones it set.
pub async fn apply_properties(
    table_uri: &str,
    storage_options: &HashMap<String, String>,
    wanted: &TableProperties,
) -> Result<Vec<String>> {
    let url = url::Url::parse(table_uri).map_err(|err| Error::Config(format!("table URI {table_uri}: {err}")))?;
    let mut table = open_table(&url, storage_options).await?;
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    keep_properties(&mut table, wanted).await
}
