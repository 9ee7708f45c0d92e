//! The exporter's configuration, from the standard OpenTelemetry environment variables.
//! Tracing is off unless an OTLP endpoint is set.

/// How spans are sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf` (the OTLP default).
    Protobuf,
    /// `http/json`.
    Json,
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    /// A share of traces, by trace id.
    Ratio(f64),
    /// The caller's decision when its `traceparent` carries one, else the inner sampler's.
    ParentBased(Root),
}

/// The sampler of a trace that starts at toolgate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtelConfig {
    /// Where spans are POSTed (`…/v1/traces`).
    pub endpoint: String,
    pub protocol: Protocol,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`): credentials for the collector,
    /// never logged.
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, besides `service.name` and `service.version`.
    pub resource: Vec<(String, String)>,
    pub sampler: Sampler,
}

impl OtelConfig {
    /// Reads the variables through `lookup`; `Ok(None)` when no endpoint is set (or
    /// `OTEL_SDK_DISABLED=true`), an error naming the variable for a value toolgate cannot
    /// honour.
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<OtelConfig>, String> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal's own endpoint is used as it is; the general one gets the path.
            (Some(traces), _) => traces.trim().to_string(),
            (None, Some(base)) => format!("{}/v1/traces", base.trim().trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT: {endpoint:?} is not an http:// or https:// URL"
            ));
        }
        let protocol_var = [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|v| (name, v)));
        let protocol = match protocol_var {
            None => Protocol::Protobuf,
            Some((_, v)) if v.trim() == "http/protobuf" => Protocol::Protobuf,
            Some((_, v)) if v.trim() == "http/json" => Protocol::Json,
            Some((name, v)) => {
                return Err(format!(
                    "{name}: {v:?} is not supported; use http/protobuf or http/json (toolgate exports OTLP over HTTP)"
                ))
            }
        };
        let headers = [
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|v| (name, v)))
        .map(|(name, v)| key_values(name, &v))
        .transpose()?
        .unwrap_or_default();
        let resource = var("OTEL_RESOURCE_ATTRIBUTES")
            .map(|v| key_values("OTEL_RESOURCE_ATTRIBUTES", &v))
            .transpose()?
            .unwrap_or_default();
        let service_name = var("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "toolgate".to_string());
        let sampler = sampler(var("OTEL_TRACES_SAMPLER"), var("OTEL_TRACES_SAMPLER_ARG"))?;
        Ok(Some(OtelConfig {
            endpoint,
            protocol,
            headers,
            service_name,
            resource,
            sampler,
        }))
    }
}

fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, String> {
    let ratio = || -> Result<f64, String> {
        match &arg {
            None => Ok(1.0),
            Some(text) => match text.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG: {text:?} is not a ratio from 0 to 1"
                )),
            },
        }
    };
    Ok(match name.as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => Sampler::ParentBased(Root::AlwaysOn),
        Some("parentbased_always_off") => Sampler::ParentBased(Root::AlwaysOff),
        Some("parentbased_traceidratio") => Sampler::ParentBased(Root::Ratio(ratio()?)),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::Ratio(ratio()?),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER: {other:?} is not one of always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
            ))
        }
    })
}

/// `key=value,key=value`, values percent-decoded (the W3C Baggage form the variables use).
fn key_values(name: &str, text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                format!("{name}: an entry has no `=` (the form is key=value,key=value)")
            })?;
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| format!("{name}: a value is not UTF-8 once decoded"))?;
            Ok((key.trim().to_string(), value.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<OtelConfig>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtelConfig::from_env(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn off_without_an_endpoint_and_standard_defaults_with_one() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[("OTEL_SERVICE_NAME", "x")]), Ok(None));
        let config = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")])
            .expect("valid")
            .expect("on");
        assert_eq!(config.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(config.protocol, Protocol::Protobuf);
        assert_eq!(config.service_name, "toolgate");
        assert_eq!(config.sampler, Sampler::ParentBased(Root::AlwaysOn));
        let off = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(off, Ok(None));
    }

    #[test]
    fn every_variable_is_read_and_bad_values_are_named() {
        let config = read(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://collector/custom",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20x, tenant=t1",
            ),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .expect("valid")
        .expect("on");
        assert_eq!(config.endpoint, "https://collector/custom");
        assert_eq!(config.protocol, Protocol::Json);
        assert_eq!(
            config.headers,
            [
                ("authorization".into(), "Bearer x".into()),
                ("tenant".into(), "t1".into())
            ]
        );
        assert_eq!(config.sampler, Sampler::Ratio(0.25));
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ] {
            let mut vars = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), (name, value)];
            if name == "OTEL_TRACES_SAMPLER_ARG" {
                vars.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
            }
            let error = read(&vars).expect_err(value);
            assert!(error.starts_with(name), "{error}");
        }
        assert!(read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).is_err());
    }
}
