//! The transport against the simulator: redirects (credentials withheld across origins,
//! loops), credentials that expire (OAuth2 client credentials, a Google service account,
//! SigV4 on the wire, secrets never written), warm and cold connections, and DNS overrides.

mod common;
use common::*;
use serde_json::Value;

fn cases<'a>(r: &'a Value, probe: &str) -> Vec<&'a Value> {
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["probe"] == probe)
        .collect()
}

fn case<'a>(r: &'a Value, probe: &str) -> &'a Value {
    cases(r, probe)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no case of {probe}"))
}

fn seen(sim: &Sim) -> Value {
    serde_json::from_str(&sim.get("/net/seen")).unwrap()
}

/// The requests a simulator saw at `path`, in order.
fn seen_at(sim: &Sim, path: &str) -> Vec<Value> {
    seen(sim)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == path)
        .cloned()
        .collect()
}

#[test]
fn redirects_are_followed_only_when_asked_credentials_stay_on_their_origin_and_loops_are_caught() {
    const TOKEN: &str = "redir-Planted-Token-5531";
    const KEY: &str = "redir-Planted-Key-9902";
    let sim = Sim::start(1, None);
    let other = Sim::start(2, None);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "token", TOKEN);
    write(d, "key", KEY);
    write(d, "get.jsonl", "{\"id\": \"g\", \"input\": {}}\n");
    write(
        d,
        "post.jsonl",
        "{\"id\": \"p\", \"input\": {\"body\": {\"question\": \"hello\"}}}\n",
    );
    let (a, b) = (&sim.url, &other.url);
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: redirects
defaults: {{ timeout: 5s, concurrency: 1 }}
endpoints:
  off:
    protocol: http-json
    method: GET
    url: "{a}/net/redirect?to=/net/echo"
    headers: {{ Authorization: "Bearer ${{file:token}}" }}
  same:
    protocol: http-json
    method: GET
    url: "{a}/net/redirect?to=/net/echo"
    follow_redirects: 3
    headers: {{ Authorization: "Bearer ${{file:token}}", x-api-key: "${{file:key}}", x-trace: plain-trace }}
  cross:
    protocol: http-json
    method: GET
    url: "{a}/net/redirect?to={b}/net/echo"
    follow_redirects: 3
    headers: {{ Authorization: "Bearer ${{file:token}}", x-api-key: "${{file:key}}", x-trace: plain-trace }}
  post-302:
    protocol: http-json
    method: POST
    url: "{a}/net/redirect?to=/net/echo&status=302"
    follow_redirects: 1
  post-307:
    protocol: http-json
    method: POST
    url: "{b}/net/redirect?to=/net/echo&status=307"
    follow_redirects: 1
  loop-ab:
    protocol: http-json
    method: GET
    url: "{a}/net/loop/a"
    follow_redirects: 5
  loop-self:
    protocol: http-json
    method: GET
    url: "{a}/net/loop/self"
    follow_redirects: 5
  too-many:
    protocol: http-json
    method: GET
    url: "{a}/net/redirect?to=/net/redirect%3Fto%3D/net/echo"
    follow_redirects: 1
probes:
  - {{ name: off, endpoint: off, golden: get.jsonl }}
  - {{ name: same, endpoint: same, golden: get.jsonl }}
  - {{ name: cross, endpoint: cross, golden: get.jsonl }}
  - {{ name: post-302, endpoint: post-302, golden: post.jsonl }}
  - {{ name: post-307, endpoint: post-307, golden: post.jsonl }}
  - {{ name: loop-ab, endpoint: loop-ab, golden: get.jsonl }}
  - {{ name: loop-self, endpoint: loop-self, golden: get.jsonl }}
  - {{ name: too-many, endpoint: too-many, golden: get.jsonl }}
"#
        ),
    );
    let (out, r) = run_with_report(&s, &[], &[]);
    assert_report_valid(&r);
    let (stdout, stderr) = text(&out);
    // Off by default: the redirect is the answer, an http_status error naming where it went.
    let off = case(&r, "off");
    assert_eq!(off["outcome"], "http_status", "{off}");
    assert!(
        off["error"]
            .as_str()
            .unwrap()
            .contains("redirect to /net/echo"),
        "{off}"
    );
    assert!(off.get("redirects").is_none(), "{off}");

    for p in ["same", "cross", "post-302", "post-307"] {
        let c = case(&r, p);
        assert_eq!(c["outcome"], "ok", "{p}: {c}\n{stderr}");
        assert_eq!(c["status"], 200, "{c}");
        let hops = c["redirects"].as_array().unwrap();
        assert_eq!(hops.len(), 1, "{c}");
    }
    let same = &case(&r, "same")["redirects"][0];
    assert_eq!(same["status"], 302);
    assert_eq!(same["cross_origin"], false);
    assert_eq!(same["location"], format!("{a}/net/echo"));
    let cross = &case(&r, "cross")["redirects"][0];
    assert_eq!(cross["cross_origin"], true);
    assert_eq!(cross["location"], format!("{b}/net/echo"));
    // The first byte is the final answer's, after the redirect's round trip.
    let c = case(&r, "cross");
    let ttfb = c["latency"]["time_to_first_byte"].as_f64().unwrap();
    assert!(ttfb > 0.0, "{c}");

    // Same origin: every header went to the echo. Another origin: the credential headers
    // were withheld, the others sent.
    let echo_a = seen_at(&sim, "/net/echo");
    let with_auth: Vec<&Value> = echo_a
        .iter()
        .filter(|e| e["headers"]["authorization"].is_string())
        .collect();
    assert_eq!(with_auth.len(), 1, "{echo_a:#?}");
    assert_eq!(
        with_auth[0]["headers"]["authorization"],
        format!("Bearer {TOKEN}")
    );
    assert_eq!(with_auth[0]["headers"]["x-api-key"], KEY);
    let echo_b = seen_at(&other, "/net/echo");
    let from_cross: Vec<&Value> = echo_b
        .iter()
        .filter(|e| e["headers"]["x-trace"] == "plain-trace")
        .collect();
    assert_eq!(from_cross.len(), 1, "{echo_b:#?}");
    let h = &from_cross[0]["headers"];
    assert!(h.get("authorization").is_none(), "{h}");
    assert!(h.get("x-api-key").is_none(), "{h}");
    assert!(!from_cross[0].to_string().contains(TOKEN));
    assert!(!from_cross[0].to_string().contains(KEY));
    // The redirect itself (first origin) did get the credentials.
    let redirected = seen_at(&sim, "/net/redirect");
    assert!(redirected
        .iter()
        .any(|r| r["headers"]["authorization"] == format!("Bearer {TOKEN}")));
    // 302 after a POST continues as a GET without a body; 307 repeats the POST.
    let get_after_302 = echo_a
        .iter()
        .find(|e| {
            e["method"] == "GET"
                && e["headers"]["authorization"].is_null()
                && e["headers"]["x-trace"].is_null()
        })
        .unwrap();
    assert_eq!(get_after_302["body_bytes"], 0, "{get_after_302}");
    let post_after_307: Vec<&Value> = echo_b.iter().filter(|e| e["method"] == "POST").collect();
    assert_eq!(post_after_307.len(), 1, "{echo_b:#?}");
    assert!(post_after_307[0]["body_bytes"].as_u64().unwrap() > 0);

    // Loops are their own class; a chain longer than allowed is an http_status error.
    for p in ["loop-ab", "loop-self"] {
        let c = case(&r, p);
        assert_eq!(c["outcome"], "redirect_loop", "{p}: {c}");
        assert!(
            c["error"].as_str().unwrap().contains("redirect loop"),
            "{c}"
        );
    }
    let ab = case(&r, "loop-ab");
    assert_eq!(ab["redirects"].as_array().unwrap().len(), 1, "{ab}");
    let many = case(&r, "too-many");
    assert_eq!(many["outcome"], "http_status", "{many}");
    assert!(
        many["error"]
            .as_str()
            .unwrap()
            .contains("more redirects than follow_redirects (1) allows"),
        "{many}"
    );
    // The planted credentials appear nowhere canary wrote.
    let report = std::fs::read_to_string(s.with_file_name("r.json")).unwrap();
    for (what, text) in [
        ("report", &report),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        assert!(!text.contains(TOKEN), "{what} holds the token");
        assert!(!text.contains(KEY), "{what} holds the key");
    }
}
