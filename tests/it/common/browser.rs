//! Headless Chromium driven through chromedriver (WebDriver) for the web console's tests.
//! `make test` installs Debian's chromium and chromium-driver into the project cache
//! (scripts/chromium.sh) and passes their directory in `SHEPHERD_CHROMIUM_DIR`.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The directory holding `bin/chromium` and `bin/chromedriver`.
fn chromium_dir() -> PathBuf {
    let dir = std::env::var_os("SHEPHERD_CHROMIUM_DIR").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.cache/tools/chromium"
            ))
        },
        PathBuf::from,
    );
    assert!(
        dir.join("bin/chromedriver").exists(),
        "no chromedriver in {}: run `make chromium` (make test does) or set SHEPHERD_CHROMIUM_DIR",
        dir.display()
    );
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One chromedriver with one headless Chromium session; both are stopped when dropped
/// (chromedriver runs in its own process group, which takes Chromium down with it).
pub struct Browser {
    pub client: Client,
    driver: std::process::Child,
    /// Where the console is: `https://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// A phone-sized window when `phone`, else a laptop's.
    pub async fn start(base: String, phone: bool) -> Browser {
        use std::os::unix::process::CommandExt;
        let dir = chromium_dir();
        let port = free_port();
        let driver = std::process::Command::new(dir.join("bin/chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let size = if phone { "390,844" } else { "1280,900" };
        let mut caps = serde_json::Map::new();
        // The test CA signed the console's certificate; Chromium does not know it.
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": dir.join("bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--hide-scrollbars", format!("--window-size={size}")],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            // chromedriver listens on loopback: plain HTTP.
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        base,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The path of the page shown.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Clicks what `css` finds, on the same page (e.g. opens a `details`).
    pub async fn press(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks what `css` finds and waits until the page it leads to has loaded (a click
    /// that submits a form may return before the navigation starts).
    pub async fn click(&self, css: &str) {
        self.client
            .execute("window.__shepherdOldPage = true;", vec![])
            .await
            .unwrap();
        self.press(css).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.__shepherdOldPage !== true && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .unwrap_or(Value::Bool(false));
            if loaded == Value::Bool(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "clicking {css} led to no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Logs in on the console's form with `token`.
    pub async fn log_in(&self, token: &str) {
        self.goto("/ui/login").await;
        self.fill("#token", token).await;
        self.click("form.login button[type=submit]").await;
    }

    /// Runs `fetch` in the page (same origin, with its cookies): the status and the body.
    pub async fn fetch(&self, method: &str, path: &str, form: &str) -> (u16, String) {
        let answer = self
            .client
            .execute_async(
                "const [method, path, body, done] = arguments;
                 fetch(path, {method, body: body || undefined, credentials: 'same-origin', redirect: 'manual',
                              headers: body ? {'content-type': 'application/x-www-form-urlencoded'} : {}})
                   .then(async r => done([r.status, await r.text()]))
                   .catch(e => done([0, String(e)]));",
                vec![json!(method), json!(path), json!(form)],
            )
            .await
            .unwrap();
        (
            answer[0].as_u64().unwrap() as u16,
            answer[1].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Saves a screenshot of the whole page (up to 2,000 pixels tall) to
    /// `docs/images/NAME.png`, shown by the README.
    pub async fn screenshot(&self, name: &str) {
        let (width, height) = self.client.get_window_size().await.unwrap();
        let page_height = self
            .client
            .execute(
                "window.scrollTo(0, 0); document.activeElement.blur(); \
                 return document.documentElement.scrollHeight;",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(height);
        let full = (page_height as u32).clamp(height as u32, 2000);
        self.client
            .set_window_size(width as u32, full)
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        self.client
            .set_window_size(width as u32, height as u32)
            .await
            .unwrap();
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/images"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits, without reloading, until `done` holds for the text of `css` (a liveness
    /// bound, not a timing assertion); the last text. What changes meanwhile is the page's
    /// own doing (its script, or a navigation it started).
    pub async fn wait_for_text(
        &self,
        css: &str,
        seconds: u64,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if done(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} never got there; last: {text}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Inputs, selects and text areas of the page without a label: none, in an accessible
    /// form.
    pub async fn unlabelled_fields(&self) -> Vec<String> {
        let found = self
            .client
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                   .filter(e => e.labels.length === 0).map(e => e.name || e.id);",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    /// Whether the page is wider than the window (it should reflow instead).
    pub async fn overflows_horizontally(&self) -> bool {
        self.client
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth;",
                vec![],
            )
            .await
            .unwrap()
            == Value::Bool(true)
    }

    /// The page's CSRF token (the logout form carries it).
    pub async fn csrf_token(&self) -> String {
        self.client
            .find(Locator::Css("form.logout input[name=csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}
