//! The block explorer page at `GET /` on the API port: latest blocks arriving live (from
//! `GET /v1/events`), a block's header, certificate and transactions, a transaction lookup
//! whose inclusion proof the browser checks itself (Web Crypto SHA-256), and the node's
//! peers and health. It is a static page over the client API, nothing more.
//!
//! Every asset is compiled into the binary (`explorer/` beside this crate's `src/`): the
//! page loads nothing from elsewhere, so it works on networks without Internet access.
//! Every answer carries a strict Content-Security-Policy ([`CONTENT_SECURITY_POLICY`]):
//! scripts, styles and requests from this origin only, no inline script or style, no
//! plugin, frame or form target, and Trusted Types required, so no string can become
//! markup or script even if a transaction's payload tries (the page writes text only).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::routes::ClientApi;

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
trusted-types 'none'";

/// Where the assets are served: `/explorer/<name>`.
pub const ASSET_PREFIX: &str = "/explorer/";

/// One embedded file of the page.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page itself, served at `/`.
pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../explorer/index.html"),
};

/// The files under [`ASSET_PREFIX`].
pub const ASSETS: [Asset; 4] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../explorer/app.js"),
    },
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../explorer/views.js"),
    },
    Asset {
        name: "verify.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../explorer/verify.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../explorer/style.css"),
    },
];

/// The explorer page.
#[utoipa::path(
    get,
    path = "/",
    tag = "explorer",
    responses(
        (status = 200, content_type = "text/html", body = String, description = "The block explorer page (HTML; its scripts and style are under /explorer/). Strict Content-Security-Policy."),
    )
)]
pub async fn index(State(_api): State<Arc<ClientApi>>) -> Response {
    serve(&INDEX)
}

/// One of the page's scripts or its style sheet.
#[utoipa::path(
    get,
    path = "/explorer/{asset}",
    tag = "explorer",
    params(("asset" = String, Path, description = "`app.js`, `views.js`, `verify.js` or `style.css`")),
    responses(
        (status = 200, content_type = "text/javascript", body = String, description = "The asset (JavaScript module or CSS), compiled into the node."),
        (status = 404, description = "No such asset.", body = crate::error::ErrorBody),
    )
)]
pub async fn asset(
    State(_api): State<Arc<ClientApi>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(serve)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no explorer asset {:?}",
                crate::server::cut(&name, 64)
            ))
        })
}

/// `asset` with the page's security headers. Not cached without revalidation: a node
/// upgrade must not leave an old script in a browser.
fn serve(asset: &Asset) -> Response {
    let headers = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    let mut response = (headers, asset.body).into_response();
    response.headers_mut().insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_nothing_inline() {
        let page = INDEX.body;
        for asset in &ASSETS {
            if asset.name.ends_with(".css") || asset.name == "app.js" {
                assert!(
                    page.contains(&format!("\"{ASSET_PREFIX}{}\"", asset.name)),
                    "{}",
                    asset.name
                );
            }
        }
        // No inline script or style, no event handler attribute, nothing from elsewhere.
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<style"));
        assert!(!page.contains(" style="));
        let handler = page.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler attribute");
        for asset in std::iter::once(&INDEX).chain(ASSETS.iter()) {
            for remote in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !asset.body.contains(remote),
                    "{} refers to {remote}",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn the_scripts_never_turn_strings_into_markup() {
        // The CSP's Trusted Types would block these at run time; keep them out of the code.
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!asset.body.contains(sink), "{} uses {sink}", asset.name);
            }
        }
    }
}
