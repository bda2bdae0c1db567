//! Many tables from one deployment: the routing table says which table an object belongs to.
//!
//! Services write `s3://raw/<service>/date=…/`; each service's events go to a table of their
//! own, with their own schema and partitioning. A routing file (`INLET_ROUTES`) lists the
//! routes; one queue and one converter serve them all, and the compactor compacts each table.
//!
//! ```json
//! {"routes": [
//!   {"name": "web", "prefix": "web/", "table_uri": "s3://lake/web", "schema": "web.schema.json",
//!    "partition_by": "date=key"},
//!   {"name": "api", "bucket": "raw", "prefix": "api/", "table_uri": "s3://lake/api",
//!    "schema": "s3://config/api.schema.json", "settings": {"INLET_TARGET_FILE_BYTES": "134217728"}}
//! ]}
//! ```
//!
//! Every other setting is read from the environment, as for a single table, unless the route
//! sets it under `settings`. Without `INLET_ROUTES` the deployment is one table, served by
//! one route that takes every object.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lineage::SourceObject;

/// One route: objects under `prefix` (of `bucket`, when given) belong to one table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Short name: the table's name in requests (`{"table": "web"}`), metrics and logs.
    pub name: String,
    /// Only objects of this bucket; any bucket when absent.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Key prefix of the route's objects (`""` takes every key).
    pub prefix: String,
    /// The Delta table (`INLET_TABLE_URI` of this route).
    pub table_uri: String,
    /// The declared schema (`INLET_SCHEMA` of this route): a path, relative to the routing
    /// file's directory (or `LAMBDA_TASK_ROOT`), or `s3://bucket/key`.
    pub schema: String,
    /// Partitioning (`INLET_PARTITION_BY` of this route); unpartitioned when absent.
    #[serde(default)]
    pub partition_by: Option<String>,
    /// Any other setting for this table, by its environment variable.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// Settings that name a table, its schema or its layout: a route sets them, never the
/// environment shared by every route.
const PER_TABLE: &[&str] = &["INLET_TABLE_URI", "INLET_SCHEMA", "INLET_PARTITION_BY"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    routes: Vec<Route>,
}

/// The routes of a deployment, each with its table's settings.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<(Route, Settings)>,
}

impl Routes {
    /// The routes `INLET_ROUTES` names when set (read through `read`, given the location),
    /// else the one table the environment describes.
    pub async fn from_lookup<F, Fut>(lookup: impl Fn(&str) -> Option<String>, read: F) -> Result<Self>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let Some(location) = get("INLET_ROUTES") else {
            let settings = Settings::from_lookup(&lookup)?;
            let name = table_name(&settings.table_uri);
            let route = Route {
                name,
                bucket: None,
                prefix: String::new(),
                table_uri: settings.table_uri.clone(),
                schema: settings.schema_location.clone(),
                partition_by: get("INLET_PARTITION_BY"),
                settings: BTreeMap::new(),
            };
            return Ok(Self { routes: vec![(route, settings)] });
        };
        let location = match get("LAMBDA_TASK_ROOT") {
            Some(root) if !location.contains("://") && !location.starts_with('/') => {
                format!("{}/{location}", root.trim_end_matches('/'))
            }
            _ => location,
        };
        let text = read(location.clone()).await?;
        Self::parse(&text, &location, lookup)
    }

    /// Parses a routing file read from `location`, each route's settings read through
    /// `lookup` where the route does not set them.
    pub fn parse(text: &str, location: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let invalid = |reason: String| Error::Config(format!("routing file {location}: {reason}"));
        let file: RoutesFile = serde_json::from_str(text).map_err(|err| {
            invalid(format!(
                "{err} (expected {{\"routes\": [{{\"name\", \"prefix\", \"table_uri\", \"schema\", and optionally \
                 \"bucket\", \"partition_by\", \"settings\"}}]}})"
            ))
        })?;
        if file.routes.is_empty() {
            return Err(invalid("no routes".into()));
        }
        let base = location.rsplit_once('/').map(|(dir, _)| dir).filter(|_| !location.contains("://"));
        let (mut names, mut tables, mut scopes) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut routes = Vec::new();
        for route in file.routes {
            let name = &route.name;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(invalid(format!("route name {name:?}: use letters, digits, '-' and '_'")));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(format!("two routes are named {name:?}")));
            }
            if !tables.insert(route.table_uri.trim_end_matches('/').to_string()) {
                return Err(invalid(format!("route {name:?}: another route already writes to {}", route.table_uri)));
            }
            if !scopes.insert((route.bucket.clone(), route.prefix.clone())) {
                return Err(invalid(format!(
                    "route {name:?}: another route already takes prefix {:?}{}",
                    route.prefix,
                    route.bucket.as_ref().map(|b| format!(" of bucket {b}")).unwrap_or_default()
                )));
            }
            if let Some(setting) = route.settings.keys().find(|key| PER_TABLE.contains(&key.as_str())) {
                return Err(invalid(format!(
                    "route {name:?}: set {setting} with the route's own field (table_uri, schema, partition_by)"
                )));
            }
            if let Some(setting) = route.settings.keys().find(|key| !crate::config::is_setting(key)) {
                return Err(invalid(format!("route {name:?}: {setting} is not an Inlet setting")));
            }
            let schema = match base {
                Some(dir) if !route.schema.contains("://") && !route.schema.starts_with('/') => {
                    format!("{dir}/{}", route.schema)
                }
                _ => route.schema.clone(),
            };
            let settings = Settings::from_lookup(|key| match key {
                "INLET_TABLE_URI" => Some(route.table_uri.clone()),
                "INLET_SCHEMA" => Some(schema.clone()),
                "INLET_PARTITION_BY" => route.partition_by.clone(),
                // Resolved against the routing file above, not the task root.
                "LAMBDA_TASK_ROOT" => None,
                _ => route.settings.get(key).cloned().or_else(|| lookup(key)),
            })
            .map_err(|err| invalid(format!("route {name:?}: {err}")))?;
            routes.push((route, settings));
        }
        Ok(Self { routes })
    }

    /// Every route with its table's settings, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &(Route, Settings)> {
        self.routes.iter()
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether there is one route and it takes every object (a single-table deployment).
    pub fn takes_every_object(&self) -> bool {
        matches!(self.routes.as_slice(), [(route, _)] if route.prefix.is_empty() && route.bucket.is_none())
    }

    /// The position of the route `object` belongs to: of the routes whose bucket matches, the
    /// one with the longest prefix of its key.
    pub fn route_of(&self, object: &SourceObject) -> Option<usize> {
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, (route, _))| route.bucket.as_ref().is_none_or(|bucket| *bucket == object.bucket))
            .filter(|(_, (route, _))| object.key.starts_with(&route.prefix))
            .max_by_key(|(_, (route, _))| (route.prefix.len(), route.bucket.is_some()))
            .map(|(at, _)| at)
    }

    /// The routes a command works on: the one `wanted` names ([`names_table`]), or every
    /// route; an error listing the routes when `wanted` names none of them.
    pub fn select(&self, wanted: Option<&str>) -> Result<Vec<&(Route, Settings)>> {
        match wanted {
            None => Ok(self.routes.iter().collect()),
            Some(wanted) => match self.named(wanted) {
                Some(at) => Ok(vec![&self.routes[at]]),
                None => Err(Error::BadRequest(format!("no table {wanted:?} here; {}", self.listing()))),
            },
        }
    }

    /// The one route a command works on: the one `wanted` names, or the only one; with
    /// several and no name, an error listing them.
    pub fn one(&self, wanted: Option<&str>) -> Result<&(Route, Settings)> {
        match (wanted, self.routes.as_slice()) {
            (None, [only]) => Ok(only),
            (None, _) => Err(Error::BadRequest(format!("name a table with --table; {}", self.listing()))),
            (Some(_), _) => Ok(self.select(wanted)?[0]),
        }
    }

    /// "the tables are web (s3://lake/web), api (...)".
    fn listing(&self) -> String {
        let tables: Vec<String> =
            self.routes.iter().map(|(route, settings)| format!("{} ({})", route.name, settings.table_uri)).collect();
        format!("the tables are {}", tables.join(", "))
    }

    /// The position of the route a request names ([`names_table`]).
    pub fn named(&self, table: &str) -> Option<usize> {
        // A route's own name first: `web` is the route named web, not another ending in /web.
        let wanted = table.trim_end_matches('/');
        self.routes.iter().position(|(route, _)| route.name == wanted).or_else(|| {
            self.routes.iter().position(|(route, settings)| names_table(table, Some(&route.name), &settings.table_uri))
        })
    }
}

/// The routing file at `location`. A local file that is not there is a deployment mistake;
/// a failed S3 read stays an AWS failure (worth retrying), not a configuration error.
pub async fn read_routes(s3: &aws_sdk_s3::Client, location: String) -> Result<String> {
    crate::aws::read_text(&location, s3).await.map_err(|err| match err {
        Error::Io(err) => Error::Config(format!("routing file {location}: {err} (INLET_ROUTES names it)")),
        other => other,
    })
}

/// Whether a request's `wanted` table is the route `name` (a deployment's one table has
/// none to match) of the table at `table_uri`: by the route's name, the table URI, or the
/// URI's last segments.
pub fn names_table(wanted: &str, name: Option<&str>, table_uri: &str) -> bool {
    let wanted = wanted.trim_end_matches('/');
    name == Some(wanted) || table_uri == wanted || table_uri.ends_with(&format!("/{wanted}"))
}

/// A table's short name: the last segment of its URI.
fn table_name(table_uri: &str) -> String {
    table_uri.trim_end_matches('/').rsplit('/').next().unwrap_or(table_uri).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "INLET_TARGET_FILE_BYTES" => Some("1000".into()),
            "INLET_PARTITION_BY" => Some("date=key".into()),
            "INLET_TABLE_URI" => Some("s3://lake/single".into()),
            _ => None,
        }
    }

    const FILE: &str = r#"{"routes": [
        {"name": "web", "prefix": "web/", "table_uri": "s3://lake/web", "schema": "web.schema.json",
         "partition_by": "date=key"},
        {"name": "web-checkout", "prefix": "web/checkout/", "table_uri": "s3://lake/checkout",
         "schema": "s3://config/checkout.schema.json", "settings": {"INLET_TARGET_FILE_BYTES": "2000"}},
        {"name": "other", "bucket": "other-raw", "prefix": "", "table_uri": "s3://lake/other", "schema": "/abs/o.json"}
    ]}"#;

    fn object(bucket: &str, key: &str) -> SourceObject {
        SourceObject { bucket: bucket.into(), key: key.into(), ..Default::default() }
    }

    #[test]
    fn an_object_goes_to_the_route_with_the_longest_prefix_of_its_bucket() {
        let routes = Routes::parse(FILE, "/etc/inlet/routes.json", env).unwrap();
        let name = |bucket, key| routes.route_of(&object(bucket, key)).map(|at| routes.routes[at].0.name.as_str());
        assert_eq!(name("raw", "web/date=2026-05-16/a.json.zst"), Some("web"));
        assert_eq!(name("raw", "web/checkout/date=2026-05-16/a.json.zst"), Some("web-checkout"));
        assert_eq!(name("raw", "api/date=2026-05-16/a.json.zst"), None, "no route takes it");
        assert_eq!(name("other-raw", "anything.json"), Some("other"));
        assert_eq!(routes.named("checkout"), Some(1), "by the table's last segment");
        assert_eq!(routes.named("web"), Some(0));
        assert_eq!(routes.named("s3://lake/other/"), Some(2));
    }

    #[test]
    fn each_route_has_its_own_table_settings_and_shares_the_rest() {
        let routes = Routes::parse(FILE, "/etc/inlet/routes.json", env).unwrap();
        let settings: Vec<&Settings> = routes.iter().map(|(_, settings)| settings).collect();
        assert_eq!(settings[0].table_uri, "s3://lake/web");
        assert_eq!(settings[0].schema_location, "/etc/inlet/web.schema.json", "relative to the routing file");
        assert!(settings[0].layout.partition.is_some());
        assert_eq!(settings[0].target_file_bytes, 1000, "from the environment");
        assert_eq!(settings[1].schema_location, "s3://config/checkout.schema.json");
        assert_eq!(settings[1].target_file_bytes, 2000, "the route's own");
        assert!(settings[1].layout.partition.is_none(), "the environment's partitioning is not a route's");
        assert_eq!(settings[2].schema_location, "/abs/o.json");
    }

    #[test]
    fn mistakes_in_the_routing_file_are_named() {
        let route = |fields: &str| format!(r#"{{"routes": [{fields}]}}"#);
        let web = r#"{"name": "web", "prefix": "web/", "table_uri": "s3://lake/web", "schema": "s.json"}"#;
        for (text, expected) in [
            (r#"{"routes": []}"#.to_string(), "no routes"),
            (r#"{"tables": []}"#.to_string(), "unknown field `tables`"),
            (route(r#"{"name": "web", "prefix": "web/"}"#), "missing field `table_uri`"),
            (route(&format!("{web}, {web}")), "two routes are named \"web\""),
            (
                route(&format!("{web}, {}", web.replace("\"web\"", "\"w2\"").replace("web/", "api/"))),
                "another route already writes to s3://lake/web",
            ),
            (
                route(&format!("{web}, {}", web.replace("\"web\"", "\"w2\"").replace("lake/web", "lake/w2"))),
                "another route already takes prefix \"web/\"",
            ),
            (route(&web.replace("\"web\",", "\"a b\",")), "use letters, digits"),
            (
                route(&web.replace("}", r#", "settings": {"INLET_SCHEMA": "x"}}"#)),
                "set INLET_SCHEMA with the route's own field",
            ),
            (
                route(&web.replace("}", r#", "settings": {"INLET_TARGET": "1"}}"#)),
                "INLET_TARGET is not an Inlet setting",
            ),
            (route(&web.replace("}", r#", "partition_by": "date"}"#)), "route \"web\""),
        ] {
            let err = Routes::parse(&text, "routes.json", env).unwrap_err().to_string();
            assert!(err.contains("routing file routes.json") && err.contains(expected), "{text}: {err}");
        }
    }

    #[tokio::test]
    async fn without_a_routing_file_the_environment_is_one_route_taking_every_object() {
        let routes = Routes::from_lookup(env, |_| async { unreachable!("no file to read") }).await.unwrap();
        assert_eq!(routes.len(), 1);
        let (route, settings) = routes.iter().next().unwrap();
        assert_eq!((route.name.as_str(), settings.table_uri.as_str()), ("single", "s3://lake/single"));
        assert_eq!(routes.route_of(&object("any", "thing.json")), Some(0));
        assert!(routes.takes_every_object());
        let lookup = |name: &str| match name {
            "INLET_ROUTES" => Some("routes.json".into()),
            "LAMBDA_TASK_ROOT" => Some("/var/task".into()),
            other => env(other),
        };
        let routes = Routes::from_lookup(lookup, |location| async move {
            assert_eq!(location, "/var/task/routes.json");
            Ok(FILE.to_string())
        })
        .await
        .unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes.iter().next().unwrap().1.schema_location, "/var/task/web.schema.json");
        assert!(!routes.takes_every_object());
    }

    #[tokio::test]
    async fn a_missing_routing_file_is_configuration_and_an_unreachable_store_is_not() {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_s3::config::Credentials::new("k", "s", None, None, "test"))
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(config);
        let missing = read_routes(&s3, "/nonexistent/routes.json".into()).await.unwrap_err();
        assert_eq!(missing.kind(), "Inlet.Config");
        assert!(missing.to_string().contains("INLET_ROUTES"), "{missing}");
        let unreachable = read_routes(&s3, "s3://config/routes.json".into()).await.unwrap_err();
        assert_eq!((unreachable.kind(), unreachable.is_retryable()), ("Inlet.Aws", true), "{unreachable}");
    }

    #[test]
    fn commands_select_a_table_by_name_or_uri_and_one_of_several_must_be_named() {
        let routes = Routes::parse(FILE, "/etc/inlet/routes.json", env).unwrap();
        let names = |chosen: Vec<&(Route, Settings)>| chosen.iter().map(|(r, _)| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(routes.select(None).unwrap()), ["web", "web-checkout", "other"]);
        assert_eq!(names(routes.select(Some("s3://lake/checkout")).unwrap()), ["web-checkout"]);
        assert_eq!(routes.one(Some("web")).unwrap().0.name, "web");
        let unnamed = routes.one(None).unwrap_err().to_string();
        assert!(unnamed.contains("--table") && unnamed.contains("web-checkout (s3://lake/checkout)"), "{unnamed}");
        let unknown = routes.select(Some("billing")).unwrap_err().to_string();
        assert!(unknown.contains("\"billing\"") && unknown.contains("other (s3://lake/other)"), "{unknown}");
    }

    #[test]
    fn a_route_field_this_release_does_not_know_is_refused_by_name() {
        let text = r#"{"routes": [{"name": "web", "prefix": "web/", "table_uri": "s3://lake/web", "schema": "s.json",
            "priority": 1}]}"#;
        let err = Routes::parse(text, "routes.json", env).unwrap_err().to_string();
        assert!(err.contains("unknown field `priority`"), "{err}");
    }
}
