//! The Pushgateway sink against a real Pushgateway: one group per source, labels kept, no
//! timestamps, a failing source does not wipe another, latest state only, delete on shutdown.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::fakes::{start_relay, Exporter, FaultProxy};
use support::receivers::{wait_for, Receiver};

fn config(sources: &[(&str, &str)], pgw_url: &str, relay: &str, delete: bool) -> String {
    let mut s = String::from("[relay]\ninterval = \"1s\"\nexternal_labels = { site = \"home\" }\nshutdown_timeout = \"10s\"\n");
    for (name, url) in sources {
        s.push_str(&format!(
            "[[source]]\ntype = \"scrape\"\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
    }
    s.push_str(&format!(
        "[[sink]]\ntype = \"pushgateway\"\nname = \"pgw\"\nurl = \"{pgw_url}\"\nrelay = \"{relay}\"\ndelete_on_shutdown = {delete}\nmin_backoff = \"100ms\"\nmax_backoff = \"300ms\"\n"
    ));
    s
}

/// The group whose grouping labels include `job`, if present.
fn group<'a>(groups: &'a Value, job: &str) -> Option<&'a Value> {
    groups
        .as_array()?
        .iter()
        .find(|g| g["labels"]["job"] == job)
}

/// The metrics of family `name` in a group: (labels, value) pairs.
fn family(g: &Value, name: &str) -> Vec<(Value, String)> {
    g[name]["metrics"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["labels"].clone(),
                        m["value"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn each_source_is_its_own_group_and_a_failing_one_wipes_nothing_else() {
    let pgw = Receiver::pushgateway().await;
    let a = Exporter::start(
        "# TYPE temp gauge\n# HELP temp Room temperature.\ntemp{room=\"kitchen\"} 21.5\n",
    )
    .await;
    let b = Exporter::start(
        "# TYPE temp gauge\n# HELP temp Room temperature.\ntemp{room=\"attic\"} 30\n",
    )
    .await;
    let (cancel, h, _) = start_relay(&config(
        &[("a", &a.url), ("b", &b.url)],
        &pgw.base_url,
        "pi-gw-1",
        false,
    ));

    let groups = wait_for(Duration::from_secs(30), || async {
        let g = pgw.pushgateway_groups().await;
        (group(&g, "a").is_some() && group(&g, "b").is_some()).then_some(g)
    })
    .await;
    let ga = group(&groups, "a").unwrap();
    assert_eq!(ga["labels"]["relay"], "pi-gw-1");
    let temps = family(ga, "temp");
    assert_eq!(temps.len(), 1);
    assert_eq!(temps[0].1, "21.5");
    assert_eq!(
        temps[0].0["instance"],
        a.addr.to_string(),
        "series keep their instance"
    );
    assert_eq!(temps[0].0["job"], "a");
    assert_eq!(temps[0].0["site"], "home");
    assert_eq!(temps[0].0["room"], "kitchen");
    assert_eq!(family(ga, "up")[0].1, "1");

    // Source b breaks: its group shows up 0 and no stale values; a's group is untouched.
    b.set_status(503);
    wait_for(Duration::from_secs(15), || async {
        let g = pgw.pushgateway_groups().await;
        let gb = group(&g, "b")?.clone();
        (family(&gb, "up").first()?.1 == "0" && family(&gb, "temp").is_empty()).then_some(())
    })
    .await;
    let g = pgw.pushgateway_groups().await;
    assert_eq!(family(group(&g, "a").unwrap(), "temp")[0].1, "21.5");
    // The relay's own metrics have their own group.
    assert!(
        group(&g, "pushrelay").is_some() || {
            tokio::time::sleep(Duration::from_secs(2)).await;
            group(&pgw.pushgateway_groups().await, "pushrelay").is_some()
        }
    );
    cancel.cancel();
    h.await.unwrap().unwrap();
    // delete_on_shutdown = false keeps the groups.
    assert!(group(&pgw.pushgateway_groups().await, "a").is_some());
}

/// A stock Pushgateway refuses UTF-8 names; they arrive escaped by Prometheus's "values"
/// scheme, and a scraped `le` arrives normalised as Prometheus stores it.
#[tokio::test]
async fn utf8_names_arrive_escaped() {
    let pgw = Receiver::pushgateway().await;
    let a = Exporter::start(
        "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"l.x\"=\"v\",plain=\"p\"} 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+inf\"} 2\nh_sum 3\nh_count 2\n",
    )
    .await;
    let (cancel, h, _) = start_relay(&config(&[("a", &a.url)], &pgw.base_url, "r", false));
    let g = wait_for(Duration::from_secs(30), || async {
        let g = pgw.pushgateway_groups().await;
        group(&g, "a")
            .filter(|g| !g["U__my_2e_metric"].is_null())
            .cloned()
    })
    .await;
    let m = family(&g, "U__my_2e_metric");
    assert_eq!(m.len(), 1, "{g}");
    assert_eq!(m[0].0["U__l_2e_x"], "v");
    assert_eq!(m[0].0["plain"], "p");
    let text = pgw.pushgateway_metrics_text().await;
    assert!(
        text.contains("h_bucket{") && text.contains("le=\"1\"") && text.contains("le=\"+Inf\""),
        "{text}"
    );
    cancel.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn relay_names_with_slashes_and_delete_on_shutdown() {
    let pgw = Receiver::pushgateway().await;
    let a = Exporter::start("x 1\n").await;
    let (cancel, h, _) = start_relay(&config(&[("a", &a.url)], &pgw.base_url, "site/gw 1", true));
    let g = wait_for(Duration::from_secs(30), || async {
        let g = pgw.pushgateway_groups().await;
        group(&g, "a").cloned()
    })
    .await;
    assert_eq!(g["labels"]["relay"], "site/gw 1");
    cancel.cancel();
    h.await.unwrap().unwrap();
    let g = pgw.pushgateway_groups().await;
    assert!(group(&g, "a").is_none(), "groups deleted on shutdown: {g}");
}

#[tokio::test]
async fn while_the_pushgateway_is_down_only_the_latest_state_is_pushed() {
    let pgw = Receiver::pushgateway().await;
    let proxy = FaultProxy::start(&pgw.base_url).await;
    let failures: Vec<(u16, &str)> = (0..8).map(|_| (503, "down")).collect();
    proxy.fail_next(&failures);
    let a = Exporter::start("v 1\n").await;
    let (cancel, h, _) = start_relay(&config(&[("a", &a.url)], &proxy.url, "r", false));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.set_body("v 2\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.set_body("v 3\n");
    wait_for(Duration::from_secs(30), || async {
        let g = pgw.pushgateway_groups().await;
        (family(group(&g, "a")?, "v").first()?.1 == "3").then_some(())
    })
    .await;
    cancel.cancel();
    h.await.unwrap().unwrap();
    // Bodies pushed for group a after the outage: never an old value after a newer one.
    let values: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|s| s.status == 200 && s.path.contains("/job/a/"))
        .map(|s| {
            String::from_utf8_lossy(&s.body)
                .lines()
                .find(|l| l.starts_with("v{"))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let nums: Vec<u32> = values
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(nums.windows(2).all(|w| w[1] >= w[0]), "{values:?}");
    for s in proxy.seen() {
        assert!(
            s.headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/plain; version=0.0.4")),
            "{:?}",
            s.headers
        );
        assert_eq!(s.method, "PUT");
    }
}
