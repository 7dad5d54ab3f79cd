//! The scrape source's Prometheus options and content handling, end to end through the relay's
//! one-shot poll: gzip (and the body limit on the decompressed size), the parser chosen by
//! `Content-Type`, `scrape_protocols`, `honor_timestamps`, `honor_labels`, `params` and
//! `metrics_path`, and the limits after relabelling.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use pushrelay::http::server::serve;
use pushrelay::model::Sample;
use pushrelay::relay::{poll_all_once, OneShot, PollResult};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the target answers: body, `Content-Type`, and whether to gzip it.
#[derive(Clone)]
struct Answer {
    body: Vec<u8>,
    content_type: Option<&'static str>,
    gzip: bool,
}

/// Serves `answer`; records each request's path with query, `Accept` and `Accept-Encoding`.
async fn target(answer: Answer) -> (String, Arc<Mutex<Vec<(String, String, String)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(serve(l, CancellationToken::new(), move |req| {
        let a = answer.clone();
        let seen = s2.clone();
        async move {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            seen.lock()
                .unwrap()
                .push((req.uri().to_string(), h("accept"), h("accept-encoding")));
            let mut b = hyper::Response::builder().status(200);
            if let Some(ct) = a.content_type {
                b = b.header("content-type", ct);
            }
            let body = if a.gzip {
                b = b.header("content-encoding", "gzip");
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(&a.body).unwrap();
                e.finish().unwrap()
            } else {
                a.body
            };
            b.body(Full::new(Bytes::from(body))).unwrap()
        }
    }));
    (format!("http://{addr}"), seen)
}

async fn poll(source: &str) -> PollResult {
    let text = format!(
        "[[source]]\n{source}\n[[sink]]\ntype = \"remote_write\"\nname = \"rw\"\nurl = \"http://127.0.0.1:9/api/v1/write\"\n"
    );
    let cfg =
        pushrelay::config::parse(&text, "test.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    poll_all_once(&cfg, OneShot::Inspect { check_all: false })
        .await
        .unwrap()
        .remove(0)
}

fn samples(r: &PollResult) -> Vec<&Sample> {
    r.snapshot
        .families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| {
            !["up", "scrape_duration_seconds", "scrape_samples_scraped"].contains(&s.name.as_str())
        })
        .collect()
}

fn up(r: &PollResult) -> f64 {
    r.snapshot.families[0].samples[0].value
}

fn text(body: &str) -> Answer {
    Answer {
        body: body.as_bytes().to_vec(),
        content_type: Some("text/plain; version=0.0.4"),
        gzip: false,
    }
}

#[tokio::test]
async fn gzip_is_asked_for_and_the_limit_counts_decompressed_bytes() {
    let big: String = (0..2000).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    let (url, seen) = target(Answer {
        gzip: true,
        ..text(&big)
    })
    .await;
    let r = poll(&format!(
        "type = \"scrape\"\nname = \"s\"\nurl = \"{url}/metrics\""
    ))
    .await;
    assert_eq!(r.error, None);
    assert_eq!(samples(&r).len(), 2000);
    assert!(seen.lock().unwrap()[0].2.contains("gzip"));
    // The compressed body is far below 10 KiB; decompressed it is above.
    let r = poll(&format!(
        "type = \"scrape\"\nname = \"s\"\nurl = \"{url}/metrics\"\nbody_size_limit = \"10KiB\""
    ))
    .await;
    assert_eq!(up(&r), 0.0);
    assert!(
        r.error.as_deref().unwrap().contains("exceeds the limit"),
        "{:?}",
        r.error
    );
}

#[tokio::test]
async fn parser_by_content_type_and_accept_by_scrape_protocols() {
    let om = "# TYPE a gauge\na 1 1700000000.5\n# EOF\n";
    let (url, seen) = target(Answer {
        body: om.as_bytes().to_vec(),
        content_type: Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        gzip: false,
    })
    .await;
    let r = poll(&format!(
        "type = \"scrape\"\nname = \"s\"\nurl = \"{url}/metrics\""
    ))
    .await;
    assert_eq!(r.error, None);
    assert_eq!(
        samples(&r)[0].timestamp_ms,
        Some(1_700_000_000_500),
        "seconds"
    );
    assert_eq!(
        seen.lock().unwrap()[0].1,
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    );
    let r = poll(&format!(
        "type = \"scrape\"\nname = \"s\"\nurl = \"{url}/metrics\"\nscrape_protocols = [\"PrometheusText0.0.4\"]\nhonor_timestamps = false"
    ))
    .await;
    assert_eq!(
        samples(&r)[0].timestamp_ms,
        None,
        "honor_timestamps = false"
    );
    assert_eq!(
        seen.lock().unwrap()[1].1,
        "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
    );

    // No Content-Type: the fallback parser, classic by default; OpenMetrics when asked.
    let (url, _) = target(Answer {
        body: b"a 1\n".to_vec(),
        content_type: None,
        gzip: false,
    })
    .await;
    let r = poll(&format!(
        "type = \"scrape\"\nname = \"s\"\nurl = \"{url}/m\""
    ))
    .await;
    assert_eq!((up(&r), samples(&r).len()), (1.0, 1));
    let r = poll(&format!(
        "type = \"scrape\"\nname = \"s\"\nurl = \"{url}/m\"\nfallback_scrape_protocol = \"OpenMetricsText1.0.0\""
    ))
    .await;
    assert_eq!(up(&r), 0.0);
    assert!(r.error.unwrap().contains("# EOF"));
}

#[tokio::test]
async fn params_metrics_path_honor_labels_and_limits() {
    let (url, seen) = target(text("a{job=\"mine\",instance=\"i\",x=\"1\"} 1\nb 2\nc 3\n")).await;
    let base = format!("type = \"scrape\"\nname = \"s\"\nurl = \"{url}/ignored\"\nmetrics_path = \"/probe\"\nparams = {{ target = [\"10.0.0.1\"], module = [\"a\", \"b\"] }}");
    let r = poll(&base).await;
    assert_eq!(
        seen.lock().unwrap()[0].0,
        "/probe?module=a&module=b&target=10.0.0.1"
    );
    let a = samples(&r)[0];
    assert_eq!(a.labels.get("exported_job"), Some("mine"));
    assert_eq!(a.labels.get("job"), Some("s"));
    let r = poll(&format!("{base}\nhonor_labels = true")).await;
    let a = samples(&r)[0];
    assert_eq!(
        (a.labels.get("job"), a.labels.get("instance")),
        (Some("mine"), Some("i"))
    );
    for (limit, needle) in [
        ("sample_limit = 2", "sample_limit exceeded"),
        ("label_limit = 4", "label_limit exceeded"),
        (
            "label_name_length_limit = 7",
            "label_name_length_limit exceeded",
        ),
        (
            "label_value_length_limit = 3",
            "label_value_length_limit exceeded",
        ),
    ] {
        let r = poll(&format!("{base}\n{limit}")).await;
        assert_eq!(up(&r), 0.0, "{limit}");
        assert!(
            r.error.as_deref().unwrap_or("").contains(needle),
            "{limit}: {:?}",
            r.error
        );
        assert!(samples(&r).is_empty());
    }
    // Relabelling first, then the limit: dropping one series makes the limit hold.
    let r = poll(&format!(
        "{base}\nsample_limit = 2\n[[source.metric_relabel_configs]]\nsource_labels = [\"__name__\"]\nregex = \"c\"\naction = \"drop\""
    ))
    .await;
    assert_eq!((up(&r), samples(&r).len()), (1.0, 2));
}
