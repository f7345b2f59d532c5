//! `GET /widget/…`: the official widget's npm package from `widget_dir`, for pages that must not
//! load it from a CDN.
//!
//! Only what a browser loads from the package is served: regular files ending in `.js`, `.mjs`,
//! `.css` or `.map`, and the `LICENSE`. A path is resolved (symbolic links included) before it is
//! served, and anything that resolves outside the directory, a directory itself, a hidden name
//! (`.git`, `.env`) or another type of file is 404, the same answer as a missing file, so that
//! nothing is learnt about what lies beside the package. Every answer carries
//! `X-Content-Type-Options: nosniff`, so a browser never runs a file as another type than the
//! one named here. `tower_http::services::ServeDir` then serves the checked path (conditional
//! requests and ranges).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use super::error::ApiError;

/// The largest file served: the widget's bundles are a few hundred kilobytes.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The widget's files under one resolved directory.
#[derive(Clone, Debug)]
pub(crate) struct WidgetFiles {
    /// `widget_dir`, resolved once; every served file must resolve to a path below it.
    root: Arc<PathBuf>,
    files: ServeDir,
}

impl WidgetFiles {
    /// Serves `dir`. When it cannot be resolved now, nothing is served (every path is 404)
    /// rather than paths checked against an unresolved directory.
    pub(crate) fn new(dir: &Path) -> Self {
        let root = dir.canonicalize().unwrap_or_else(|error| {
            tracing::warn!(dir = %dir.display(), %error, "widget_dir cannot be resolved; no widget file is served");
            PathBuf::new()
        });
        WidgetFiles {
            files: ServeDir::new(&root).append_index_html_on_directories(false),
            root: Arc::new(root),
        }
    }

    /// Answers one request under `/widget/` (the prefix already stripped).
    pub(crate) async fn serve(self, request: Request) -> Response {
        let Some(content_type) = self.permitted(request.uri().path()).await else {
            return with_nosniff(ApiError::not_found("no such widget file").into_response());
        };
        let mut response = match self.files.oneshot(request).await {
            Ok(response) => response.into_response(),
            Err(infallible) => match infallible {},
        };
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
        }
        with_nosniff(response)
    }

    /// The content type of the file at the URL path `path` when it may be served: a permitted
    /// type that resolves to a regular file inside the root.
    async fn permitted(&self, path: &str) -> Option<&'static str> {
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?;
        let mut relative = PathBuf::new();
        for part in decoded.split('/').filter(|part| !part.is_empty()) {
            let plain = Path::new(part).components().count() == 1
                && matches!(
                    Path::new(part).components().next(),
                    Some(Component::Normal(_))
                );
            if !plain || part.starts_with('.') || part.contains(['\\', '\0']) {
                return None;
            }
            relative.push(part);
        }
        let content_type = content_type(relative.file_name()?.to_str()?)?;
        let root = self.root.clone();
        let inside = tokio::task::spawn_blocking(move || {
            let resolved = root.join(&relative).canonicalize().ok()?;
            let metadata = std::fs::metadata(&resolved).ok()?;
            (!root.as_os_str().is_empty()
                && resolved.starts_with(&*root)
                && metadata.is_file()
                && metadata.len() <= MAX_FILE_BYTES)
                .then_some(())
        })
        .await
        .ok()
        .flatten();
        inside.map(|()| content_type)
    }
}

/// The type of a file a widget page loads, by its name; `None` for every other file.
fn content_type(name: &str) -> Option<&'static str> {
    if name == "LICENSE" {
        return Some("text/plain; charset=utf-8");
    }
    let (_, extension) = name.rsplit_once('.')?;
    match extension {
        "js" | "mjs" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        "map" => Some("application/json; charset=utf-8"),
        _ => None,
    }
}

fn with_nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn only_what_a_widget_page_loads_has_a_type() {
        assert!(content_type("trustcaptcha.umd.min.js").is_some());
        assert!(content_type("trustcaptcha.esm.js.map").is_some());
        assert!(content_type("LICENSE").is_some());
        for other in [
            "package.json",
            "server.toml",
            "state.sqlite3",
            "x.html",
            "js",
            "README.md",
        ] {
            assert_eq!(content_type(other), None, "{other}");
        }
    }
}
