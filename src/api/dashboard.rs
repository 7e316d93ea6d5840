//! The web dashboard at `/`: one page, its script and its style, compiled into the binary (no
//! CDN), under a Content-Security-Policy that lets the page load only these and talk only to
//! this server. The page logs in through `/api/login` and keeps the token in the tab's
//! sessionStorage, sending it in the `Authorization` header: no cookie, so another site cannot
//! make the browser act.

use super::http::Reply;

/// The policy of every dashboard response: nothing from elsewhere, no inline script or style,
/// no framing, no form posted anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Reply {
    Reply::text(200, content_type, body)
        .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("Cache-Control", "no-cache")
}

/// `GET /`.
pub fn index() -> Reply {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /assets/app.js`.
pub fn script() -> Reply {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /assets/app.css`.
pub fn style() -> Reply {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_runs_no_inline_script() {
        assert!(INDEX.contains(r#"<script src="/assets/app.js" defer></script>"#));
        assert!(!INDEX.contains("<script>"), "inline script");
        assert!(!INDEX.contains("style="), "inline style");
        assert!(
            !INDEX.contains("http://") && !INDEX.contains("https://"),
            "a remote asset"
        );
        assert!(!SCRIPT.contains("document.cookie"), "a cookie");
        assert!(SCRIPT.contains(r#"headers["Authorization"] = "Bearer " + state.token"#));
        for reply in [index(), script(), style()] {
            assert!(reply.headers.contains(&(
                "Content-Security-Policy",
                CONTENT_SECURITY_POLICY.to_string()
            )));
        }
    }
}
