//! Starting configs: `pushrelay init` (a commented config for one source and one sink type) and
//! `pushrelay import` (the equivalent of another tool's config). Secrets are never copied: the
//! output names an environment variable (`${EMQX_API_SECRET}`) the user sets; what does not
//! carry over is said in a comment where it would have gone.

pub mod import;
pub mod yaml;

/// The sink types `init` and `import` can write.
pub const SINKS: &[&str] = &["remote_write", "pushgateway"];

/// The source types `init` can write.
pub const SOURCES: &[&str] = &["scrape", "ttn", "ttn_devices", "emqx", "linkhub"];

/// A TOML basic string for `s` (quoted and escaped).
pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The `[relay]` table: `interval`, the service's state directory, and `listen` commented out
/// (`listen`: that line, e.g. saying where an imported exporter listened).
pub fn relay_table(interval: &str, listen: Option<String>) -> String {
    let listen = listen.unwrap_or_else(|| {
        "# listen = \"127.0.0.1:9714\"           # status page, /metrics, /-/healthy, /-/ready"
            .into()
    });
    format!(
        "[relay]\n\
         interval = {}                       # how often self-metrics are pushed; each source may set its own\n\
         state_dir = \"/var/lib/pushrelay\"      # queues and source state (the systemd unit's StateDirectory)\n\
         {listen}\n\
         # external_labels = {{ site = \"home\" }}   # added to every series (use them in alert rules)\n",
        quote(interval)
    )
}

/// One `[[sink]]` of `kind` (one of [`SINKS`]), with placeholders and comments.
pub fn sink_table(kind: &str) -> Result<String, String> {
    Ok(match kind {
        "remote_write" => "[[sink]]\n\
            type = \"remote_write\"\n\
            name = \"backend\"\n\
            # Prometheus (started with --web.enable-remote-write-receiver), Mimir, VictoriaMetrics\n\
            # (/api/v1/write), or Grafana Cloud: \"https://prometheus-prod-NN-….grafana.net/api/prom/push\"\n\
            # (Grafana Cloud → your stack → Prometheus → Details: the URL, the user id, a token).\n\
            url = \"http://127.0.0.1:9090/api/v1/write\"\n\
            # basic_auth = { username = \"123456\", password = \"${GRAFANA_CLOUD_TOKEN}\" }\n\
            # batch_wait = \"60s\"                   # on metered links: fewer, larger requests\n"
            .to_string(),
        "pushgateway" => "[[sink]]\n\
            type = \"pushgateway\"\n\
            name = \"pushgateway\"\n\
            # Each source is one group: /metrics/job/<source name>/relay/<relay>. Scrape the\n\
            # Pushgateway with honor_labels: true.\n\
            url = \"http://127.0.0.1:9091\"\n\
            # relay = \"pi-gateway\"                # the relay label (default: this host's name)\n\
            # basic_auth = { username = \"push\", password = \"${PUSHGATEWAY_PASSWORD}\" }\n"
            .to_string(),
        other => {
            return Err(format!(
                "unknown sink type {other:?}; one of: {}",
                SINKS.join(", ")
            ))
        }
    })
}

/// One `[[source]]` of `kind` (one of [`SOURCES`]), with its required keys and comments.
fn source_table(kind: &str) -> Result<&'static str, String> {
    Ok(match kind {
        "scrape" => "[[source]]\n\
            type = \"scrape\"\n\
            name = \"node\"                          # the job label\n\
            url = \"http://127.0.0.1:9100/metrics\"  # any Prometheus exporter\n\
            # interval = \"30s\"\n\
            # honor_labels = false\n",
        "ttn" => "[[source]]\n\
            type = \"ttn\"\n\
            name = \"ttn\"\n\
            # The Things Stack v3 (it talks only to the cloud API, so it can run off-site and keep\n\
            # reporting a gateway whose own host lost power).\n\
            url = \"https://eu1.cloud.thethings.network\"\n\
            api_key = \"${TTN_API_KEY}\"               # rights: gateways list, status read, info, location read\n\
            # gateways = [\"my-gw-1\"]                 # needed with a gateway-scoped key\n\
            interval = \"60s\"\n",
        "ttn_devices" => "[[source]]\n\
            type = \"ttn_devices\"\n\
            name = \"ttn-devices\"\n\
            url = \"mqtts://eu1.cloud.thethings.network\"   # the application's MQTT server (port 8883)\n\
            application = \"my-app@ttn\"                    # <application id>@<tenant id>\n\
            api_key = \"${TTN_APP_KEY}\"                    # an application key with \"read application traffic\"\n\
            expected_interval = \"15m\"                     # the silence alert fires after 3x this\n",
        "emqx" => "[[source]]\n\
            type = \"emqx\"\n\
            name = \"emqx\"\n\
            url = \"http://127.0.0.1:18083\"         # the dashboard; /api/v5 is added\n\
            api_key = \"your-api-key\"               # EMQX dashboard → System → API keys\n\
            api_secret = \"${EMQX_API_SECRET}\"      # or api_secret_file = \"/run/secrets/emqx\"\n\
            # broker = \"LocalEMQX\"                 # the broker label\n\
            # clients = [ { client_id = \"sensor-1\", alias = \"Sensor1\" } ]   # omit for every client\n",
        "linkhub" => "[[source]]\n\
            type = \"linkhub\"\n\
            name = \"router\"\n\
            url = \"http://192.168.1.1\"             # the router's web UI\n\
            request_key = \"${LINKHUB_REQUEST_KEY}\" # _TclRequestVerificationKey, from the web UI's requests\n\
            interval = \"10s\"                       # polling the LAN is free; pushing costs bytes\n",
        other => {
            return Err(format!(
                "unknown source type {other:?}; one of: {}",
                SOURCES.join(", ")
            ))
        }
    })
}

/// The config `pushrelay init --source <source> --sink <sink>` prints.
pub fn init(source: &str, sink: &str) -> Result<String, String> {
    let src = source_table(source)?;
    let sink = sink_table(sink)?;
    Ok(format!(
        "# pushrelay configuration: one {source} source pushed to one sink. Every key is described in\n\
         # docs/configuration.md. Check it with: pushrelay check --config <this file>\n\
         # ${{NAME}} is read from the environment when the relay starts (secrets stay out of the file).\n\n\
         {}\n{src}\n{sink}",
        relay_table("30s", None)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every registered type has a template, and every template parses (with its
    /// `${ENV}` references set).
    #[test]
    fn every_source_and_sink_type_has_a_template_that_parses() {
        let sources: Vec<&str> = crate::config::registry::SOURCE_TYPES
            .iter()
            .map(|t| t.name)
            .collect();
        let sinks: Vec<&str> = crate::config::registry::SINK_TYPES
            .iter()
            .map(|t| t.name)
            .collect();
        let mut s1 = sources.clone();
        s1.sort();
        let mut s2 = SOURCES.to_vec();
        s2.sort();
        assert_eq!(s1, s2);
        assert_eq!(sinks.len(), SINKS.len());
        for source in &sources {
            for sink in &sinks {
                let text = init(source, sink).unwrap();
                crate::config::parse(&text, "init.toml", &|_| Some("x".into()))
                    .unwrap_or_else(|e| panic!("{source}/{sink}: {e}\n{text}"));
            }
        }
        assert!(init("nope", "remote_write").unwrap_err().contains("scrape"));
        assert!(init("scrape", "nope").unwrap_err().contains("pushgateway"));
    }
}
