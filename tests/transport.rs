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

/// An RSA key pair from Debian's `openssl` (PKCS#8 private key, SPKI public key), PEM.
fn rsa_pair(dir: &std::path::Path) -> (String, String) {
    let key = dir.join("sa-key.pem");
    let public = dir.join("sa-pub.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("openssl is missing: install Debian's openssl (.ci/run does)")
        .status
        .success();
    assert!(ok, "openssl genpkey failed");
    let ok = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl pkey failed");
    (
        std::fs::read_to_string(key).unwrap(),
        std::fs::read_to_string(public).unwrap(),
    )
}

#[test]
fn expiring_credentials_are_refreshed_without_a_failed_case_and_never_written() {
    const CLIENT_SECRET: &str = "oauth-Planted-Client-Secret-4417";
    const WRONG_SECRET: &str = "oauth-Planted-Wrong-Secret-8820";
    const AWS_SECRET: &str = "aws-Planted-Secret-Key-2291/+x";
    const AWS_ENV_SECRET: &str = "aws-Planted-Env-Secret-6604";
    const AWS_ENV_TOKEN: &str = "aws-Planted-Env-Session-Token-3350";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private_pem, public_pem) = rsa_pair(d);
    let sim_cfg = serde_json::json!({
        "net": {
            "client_id": "probe-client",
            "client_secret": CLIENT_SECRET,
            "token_ttl_seconds": 1.0,
            "jwt_public_key": public_pem,
        }
    });
    let sim = Sim::start(5, Some(&sim_cfg.to_string()));
    let a = &sim.url;
    write(d, "client.secret", CLIENT_SECRET);
    write(d, "wrong.secret", WRONG_SECRET);
    write(d, "aws.secret", AWS_SECRET);
    let sa = serde_json::json!({
        "type": "service_account",
        "client_email": "canary-probe@example-project.iam.gserviceaccount.com",
        "private_key_id": "kid-1",
        "private_key": private_pem,
        "token_uri": format!("{a}/oauth/token?ttl=30"),
    });
    write(d, "sa.json", &sa.to_string());
    write(d, "get.jsonl", "{\"id\": \"g\", \"input\": {}}\n");
    write(
        d,
        "post.jsonl",
        "{\"id\": \"p\", \"input\": {\"body\": {\"q\": \"signed\"}}}\n",
    );
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: credentials
defaults: {{ timeout: 5s, concurrency: 1 }}
endpoints:
  oauth:
    protocol: http-json
    method: GET
    url: "{a}/oauth/protected?delay_ms=100"
    auth:
      type: oauth2-client-credentials
      token_url: "{a}/oauth/token?delay_ms=300"
      client_id: probe-client
      client_secret: "${{file:client.secret}}"
      scope: [probe.read, probe.write]
  oauth-wrong:
    protocol: http-json
    method: GET
    url: "{a}/oauth/protected"
    auth:
      type: oauth2-client-credentials
      token_url: "{a}/oauth/token"
      client_id: probe-client
      client_secret: "${{file:wrong.secret}}"
      client_auth: body
  google:
    protocol: http-json
    method: GET
    url: "{a}/oauth/protected"
    auth: {{ type: google-service-account, key_file: sa.json, scope: "https://www.googleapis.com/auth/cloud-platform" }}
  sigv4:
    protocol: http-json
    method: POST
    url: "{a}/net/echo"
    auth:
      type: aws-sigv4
      region: eu-west-1
      service: execute-api
      access_key_id: AKIDCANARYTEST
      secret_access_key: "${{file:aws.secret}}"
  sigv4-env:
    protocol: http-json
    method: POST
    url: "{a}/net/echo"
    auth: {{ type: aws-sigv4, region: us-east-1, service: bedrock }}
probes:
  - {{ name: oauth, endpoint: oauth, golden: get.jsonl, runs: 16 }}
  - {{ name: oauth-wrong, endpoint: oauth-wrong, golden: get.jsonl }}
  - {{ name: google, endpoint: google, golden: get.jsonl, runs: 2 }}
  - {{ name: sigv4, endpoint: sigv4, golden: post.jsonl }}
  - {{ name: sigv4-env, endpoint: sigv4-env, golden: post.jsonl }}
"#
        ),
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDCANARYENV"),
        ("AWS_SECRET_ACCESS_KEY", AWS_ENV_SECRET),
        ("AWS_SESSION_TOKEN", AWS_ENV_TOKEN),
    ];
    let (out, r) = run_with_report(&s, &[], &env);
    assert_report_valid(&r);
    let (stdout, stderr) = text(&out);
    // 16 runs of 100 ms across 1 s tokens: refreshed before expiry, never a failed case.
    let oauth = cases(&r, "oauth");
    assert_eq!(oauth.len(), 16);
    for c in &oauth {
        assert_eq!(c["outcome"], "ok", "{c}\n{stderr}");
        assert!(c["auth_seconds"].as_f64().is_some(), "{c}");
    }
    let seen_all = seen(&sim);
    let fetches: Vec<&Value> = seen_all["token_fetches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["grant"] == "client_credentials" && f["issued"] == true)
        .collect();
    assert!(fetches.len() >= 2, "{fetches:#?}");
    // The fetch (300 ms at the token endpoint) is the run's auth_seconds, in no latency
    // and no connection phase; a cached token costs nothing.
    let fetched: Vec<&&Value> = oauth
        .iter()
        .filter(|c| c["auth_seconds"].as_f64().unwrap() >= 0.3)
        .collect();
    assert_eq!(fetched.len(), fetches.len(), "{oauth:#?}");
    for c in &oauth {
        let ttfb = c["latency"]["time_to_first_byte"].as_f64().unwrap();
        assert!(ttfb < 0.3, "{c}");
        assert!(c["connect_seconds"].as_f64().unwrap() < 0.3, "{c}");
        let auth = c["auth_seconds"].as_f64().unwrap();
        assert!(!(0.05..0.3).contains(&auth), "{c}");
    }
    // Every protected request carried a live token.
    let protected = seen_at(&sim, "/oauth/protected");
    assert!(
        protected.iter().filter(|p| p["status"] == 200).count() >= 18,
        "{protected:#?}"
    );

    let wrong = case(&r, "oauth-wrong");
    assert_eq!(wrong["outcome"], "auth", "{wrong}");
    assert!(
        wrong["error"].as_str().unwrap().contains("HTTP 401"),
        "{wrong}"
    );
    assert!(
        wrong["error"].as_str().unwrap().contains("invalid_client"),
        "{wrong}"
    );

    // The service account's RS256 assertion verified against its public key at the sim.
    for c in cases(&r, "google") {
        assert_eq!(c["outcome"], "ok", "{c}");
    }
    let jwt: Vec<&Value> = seen_all["token_fetches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["grant"] == "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .collect();
    assert_eq!(
        jwt.len(),
        1,
        "one fetch for two runs (30 s token): {jwt:#?}"
    );
    assert_eq!(jwt[0]["signature_verified"], true, "{:#?}", jwt[0]);
    assert_eq!(jwt[0]["issued"], true);
    let claims = &jwt[0]["claims"];
    assert_eq!(
        claims["iss"],
        "canary-probe@example-project.iam.gserviceaccount.com"
    );
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(claims["aud"], format!("{a}/oauth/token?ttl=30"));

    // SigV4 on the wire: keys from the suite, and from the standard variables with a
    // session token.
    for p in ["sigv4", "sigv4-env"] {
        assert_eq!(case(&r, p)["outcome"], "ok", "{}", case(&r, p));
    }
    let echoes = seen_at(&sim, "/net/echo");
    let authz = |akid: &str| {
        echoes
            .iter()
            .find(|e| {
                e["headers"]["authorization"]
                    .as_str()
                    .is_some_and(|a| a.contains(akid))
            })
            .unwrap_or_else(|| panic!("no request signed by {akid}: {echoes:#?}"))
    };
    let given = authz("AKIDCANARYTEST");
    let h = given["headers"]["authorization"].as_str().unwrap();
    assert!(
        h.starts_with("AWS4-HMAC-SHA256 Credential=AKIDCANARYTEST/"),
        "{h}"
    );
    assert!(h.contains("/eu-west-1/execute-api/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="), "{h}");
    assert!(given["headers"]["x-amz-date"].is_string());
    let from_env = authz("AKIDCANARYENV");
    let h = from_env["headers"]["authorization"].as_str().unwrap();
    assert!(h.contains("/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"), "{h}");
    assert_eq!(from_env["headers"]["x-amz-security-token"], AWS_ENV_TOKEN);

    // No secret, key or token in anything canary wrote.
    let report = std::fs::read_to_string(s.with_file_name("r.json")).unwrap();
    let private_line = private_pem.lines().nth(1).unwrap();
    for (what, text) in [
        ("report", &report),
        ("stdout", &stdout),
        ("stderr", &stderr),
    ] {
        for secret in [
            CLIENT_SECRET,
            WRONG_SECRET,
            AWS_SECRET,
            AWS_ENV_SECRET,
            AWS_ENV_TOKEN,
            private_line,
            "sim-token-",
        ] {
            assert!(!text.contains(secret), "{what} holds {secret}");
        }
    }
}

#[test]
fn a_reused_connection_has_no_setup_phase_and_the_server_sees_one_connection() {
    let warm = Sim::start(7, None);
    let cold = Sim::start(8, None);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "get.jsonl", "{\"id\": \"g\", \"input\": {}}\n");
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: connections
defaults: {{ timeout: 5s, concurrency: 1 }}
endpoints:
  warm:
    protocol: http-json
    method: GET
    url: "{}/net/echo"
    connection: reuse
  cold:
    protocol: http-json
    method: GET
    url: "{}/net/echo"
probes:
  - {{ name: warm, endpoint: warm, golden: get.jsonl, runs: 4 }}
  - {{ name: cold, endpoint: cold, golden: get.jsonl, runs: 3 }}
"#,
            warm.url, cold.url
        ),
    );
    let prom = d.join("m.prom");
    let (out, r) = run_with_report(&s, &["--textfile", prom.to_str().unwrap()], &[]);
    assert_report_valid(&r);
    let (_, stderr) = text(&out);
    let w = cases(&r, "warm");
    assert_eq!(w.len(), 4);
    for (i, c) in w.iter().enumerate() {
        assert_eq!(c["outcome"], "ok", "{c}\n{stderr}");
        assert_eq!(c["connection"], "reuse", "{c}");
        assert_eq!(c["reused"], i > 0, "{c}");
        if i == 0 {
            assert!(c["connect_seconds"].as_f64().is_some(), "{c}");
            assert!(c["tcp_seconds"].as_f64().is_some(), "{c}");
        } else {
            // No connect phase at all: the request went out on the pooled connection.
            assert!(c["connect_seconds"].is_null(), "{c}");
            for k in ["dns_seconds", "tcp_seconds", "tls_seconds", "proxy_seconds"] {
                assert!(c.get(k).is_none(), "{k}: {c}");
            }
        }
    }
    for c in cases(&r, "cold") {
        assert_eq!(c["outcome"], "ok", "{c}");
        assert_eq!(c["connection"], "fresh", "{c}");
        assert!(c.get("reused").is_none(), "{c}");
        assert!(c["connect_seconds"].as_f64().is_some(), "{c}");
    }
    // The servers' own view: one connection for four requests, three for three.
    let peers = |sim: &Sim| {
        let mut p: Vec<String> = seen_at(sim, "/net/echo")
            .iter()
            .map(|r| r["peer"].as_str().unwrap().to_string())
            .collect();
        let n = p.len();
        p.sort();
        p.dedup();
        (n, p.len())
    };
    assert_eq!(peers(&warm), (4, 1));
    assert_eq!(peers(&cold), (3, 3));
    // The metric carries the mode: connections opened per endpoint.
    let text = std::fs::read_to_string(&prom).unwrap();
    let opened = |ep: &str, mode: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with("canary_connections_opened_total{")
                    && l.contains(&format!("endpoint=\"{ep}\""))
                    && l.contains(&format!("connection=\"{mode}\""))
            })
            .unwrap_or_else(|| panic!("no series for {ep}: {text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(opened("warm", "reuse"), 1.0);
    assert_eq!(opened("cold", "fresh"), 3.0);
}

/// `canary sim` listening on `addr` (e.g. `[::1]:0`); killed on drop.
struct SimAt {
    url: String,
    child: std::process::Child,
}

impl SimAt {
    fn start(addr: &str) -> SimAt {
        use std::io::BufRead;
        let mut child = std::process::Command::new(BIN)
            .args(["sim", "--listen", addr, "--seed", "9"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("canary sim listening on ")
            .unwrap_or_else(|| panic!("unexpected sim banner {line:?}"))
            .to_string();
        SimAt { url, child }
    }

    /// `GET /net/seen` over a plain HTTP/1.0 request.
    fn seen(&self) -> Value {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET /net/seen HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for SimAt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn dns_is_its_own_phase_ipv6_targets_work_and_resolve_pins_an_address_keeping_the_host() {
    assert!(
        ipv6_loopback(),
        "this machine has no IPv6 loopback (::1); the test needs it"
    );
    let v4 = Sim::start(11, None);
    let v6 = SimAt::start("[::1]:0");
    assert!(v6.url.starts_with("http://[::1]:"), "{}", v6.url);
    let v4_port = v4.addr.rsplit(':').next().unwrap().to_string();
    let v6_port = v6.url.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "get.jsonl", "{\"id\": \"g\", \"input\": {}}\n");
    let s = write(
        d,
        "s.yaml",
        &format!(
            r#"suite: dns
defaults: {{ timeout: 5s, concurrency: 1 }}
endpoints:
  named:
    protocol: http-json
    method: GET
    url: "http://localhost:{v4_port}/net/echo"
  v6:
    protocol: http-json
    method: GET
    url: "{v6}/net/echo"
  pinned:
    protocol: http-json
    method: GET
    url: "http://backend-7.canary.test:{v4_port}/net/echo"
    resolve: {{ backend-7.canary.test: 127.0.0.1 }}
  pinned-v6:
    protocol: http-json
    method: GET
    url: "http://v6.canary.test:{v6_port}/net/echo"
    resolve: {{ v6.canary.test: "::1" }}
probes:
  - {{ name: named, endpoint: named, golden: get.jsonl }}
  - {{ name: v6, endpoint: v6, golden: get.jsonl }}
  - {{ name: pinned, endpoint: pinned, golden: get.jsonl }}
  - {{ name: pinned-v6, endpoint: pinned-v6, golden: get.jsonl }}
"#,
            v6 = v6.url
        ),
    );
    let (out, r) = run_with_report(&s, &[], &[]);
    assert_report_valid(&r);
    let (_, stderr) = text(&out);
    for p in ["named", "v6", "pinned", "pinned-v6"] {
        let c = case(&r, p);
        assert_eq!(c["outcome"], "ok", "{p}: {c}\n{stderr}");
        assert!(c["tcp_seconds"].as_f64().is_some(), "{c}");
        let sum = c["dns_seconds"].as_f64().unwrap_or(0.0) + c["tcp_seconds"].as_f64().unwrap();
        assert!(
            (c["connect_seconds"].as_f64().unwrap() - sum).abs() < 1e-9,
            "{c}"
        );
    }
    // A name is resolved, and that is its own phase; a pinned address skips DNS.
    assert!(case(&r, "named")["dns_seconds"].as_f64().is_some());
    assert!(case(&r, "v6")["dns_seconds"].as_f64().is_some());
    assert!(case(&r, "pinned").get("dns_seconds").is_none());
    assert!(case(&r, "pinned-v6").get("dns_seconds").is_none());
    // The servers saw the URL's host in `Host`, over the address family asked for.
    let v4_seen = seen_at(&v4, "/net/echo");
    assert!(v4_seen
        .iter()
        .any(|e| e["host"] == format!("backend-7.canary.test:{v4_port}")
            && e["peer"].as_str().unwrap().starts_with("127.0.0.1:")));
    let v6_seen: Vec<Value> = v6.seen()["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let v6_echo: Vec<&Value> = v6_seen
        .iter()
        .filter(|e| e["path"] == "/net/echo")
        .collect();
    assert_eq!(v6_echo.len(), 2, "{v6_seen:#?}");
    for e in &v6_echo {
        assert!(e["peer"].as_str().unwrap().starts_with("[::1]:"), "{e}");
    }
    assert!(v6_echo
        .iter()
        .any(|e| e["host"] == format!("v6.canary.test:{v6_port}")));
    assert!(v6_echo
        .iter()
        .any(|e| e["host"] == format!("[::1]:{v6_port}")));
}

#[test]
fn bad_network_keys_are_load_errors_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "g.jsonl", "{\"id\": \"a\", \"input\": {}}\n");
    let s = write(
        d,
        "s.yaml",
        r#"suite: bad
endpoints:
  e:
    protocol: http-json
    url: "https://127.0.0.1:1/x"
    proxy: "socks5://127.0.0.1:1080"
    follow_redirects: 99
    connection: sometimes
    resolve: { api.example.com: not-an-ip }
    auth: { type: kerberos }
  f:
    protocol: http-json
    url: "https://127.0.0.1:1/x"
    auth: { type: oauth2-client-credentials, client_id: a }
  g:
    protocol: http-json
    url: "https://127.0.0.1:1/x"
    auth: { type: aws-sigv4, region: us-east-1, service: s, access_key_id: AKID }
  w:
    protocol: ws-opus
    url: "wss://127.0.0.1:1/v1/voice"
    connection: reuse
probes:
  - { name: p, endpoint: e, golden: g.jsonl }
"#,
    );
    let out = canary(&["validate", s.to_str().unwrap()], &[]);
    let (_, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    for (line, needle) in [
        (6, "proxy scheme `socks5` is not supported"),
        (7, "`follow_redirects` must be a whole number from 0 to 20"),
        (8, "unknown connection mode"),
        (9, "not-an-ip"),
        (10, "unknown auth type `kerberos`"),
        (14, "needs `token_url`"),
        (14, "needs `client_secret`"),
        (18, "give `access_key_id` and `secret_access_key` together"),
        (22, "`connection: reuse` applies to protocols over HTTP"),
    ] {
        assert!(
            e.lines()
                .any(|l| l.contains(&format!("s.yaml:{line}")) && l.contains(needle)),
            "line {line}: {needle}\n{e}"
        );
    }
}
