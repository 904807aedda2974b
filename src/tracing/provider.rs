//! Provider names as Opik's cost lookup expects them.
//!
//! Opik prices an LLM span by its `provider` and `model`, keyed on its own provider names
//! (`openai`, `anthropic`, `bedrock`, `google_vertexai`, ...). The OpenTelemetry GenAI
//! conventions spell several providers differently (`aws.bedrock`, `gcp.vertex_ai`,
//! `az.ai.openai`). Opik's backend renames them when it ingests OTLP, but spans written
//! through its REST API (as this crate writes them) are taken as they are, so the layer
//! applies the same renames itself. The rules follow Opik's backend, in the order of its
//! chain (`apps/opik-backend/src/main/java/com/comet/opik/domain/mapping/otel/ProviderResolvers.java`):
//!
//! 1. aliases (`.../otel/GenAiProviderAliasResolver.java`): a trimmed, case-insensitive
//!    lookup; anything else passes through trimmed;
//! 2. `google` and `gcp.gen_ai`, which name no backend, by the endpoint host in
//!    `server.address` (`.../otel/GoogleProviderResolver.java`): `*aiplatform.googleapis.com`
//!    is `google_vertexai`, anything else `google_ai`;
//! 3. a Claude model on Vertex is `anthropic_vertexai` (`.../otel/VertexAnthropicResolver.java`).
//!
//! Not reproduced: the Elastic inference service and API-host (`api.cerebras.ai`) resolvers.

/// Opik's name for Vertex AI (Gemini models).
const GOOGLE_VERTEX_AI: &str = "google_vertexai";
/// Opik's name for the Gemini developer API.
const GOOGLE_AI: &str = "google_ai";

/// The aliases of `GenAiProviderAliasResolver.java`: semantic-convention spelling (lower
/// case) to Opik's provider name.
const ALIASES: &[(&str, &str)] = &[
    ("vertex_ai", GOOGLE_VERTEX_AI),
    ("az.ai.openai", "azure"),
    ("gcp.vertex_ai", GOOGLE_VERTEX_AI),
    ("gcp.gemini", GOOGLE_AI),
    ("aws.bedrock", "bedrock"),
    ("bedrock_converse", "bedrock"),
    ("azure.ai.openai", "azure"),
    ("mistral_ai", "mistral"),
    ("x_ai", "xai"),
    ("open_ai", "openai"),
    ("amazon_bedrock", "bedrock"),
    ("google_ai_gemini", GOOGLE_AI),
];

/// The provider Opik's cost lookup knows for a reported `provider` (from
/// `gen_ai.provider.name` or `gen_ai.system`), given the span's `model` and
/// `server.address`. `None` for a blank provider.
pub(super) fn normalize(
    provider: &str,
    model: Option<&str>,
    server_address: Option<&str>,
) -> Option<String> {
    let trimmed = provider.trim();
    if trimmed.is_empty() {
        return None;
    }
    let mut resolved = match ALIASES
        .iter()
        .find(|(from, _)| from.eq_ignore_ascii_case(trimmed))
    {
        Some((_, to)) => (*to).to_owned(),
        None => trimmed.to_owned(),
    };
    if trimmed.eq_ignore_ascii_case("google") || trimmed.eq_ignore_ascii_case("gcp.gen_ai") {
        let host = server_address.unwrap_or_default().to_ascii_lowercase();
        resolved = if host.contains("aiplatform.googleapis.com") {
            GOOGLE_VERTEX_AI
        } else {
            GOOGLE_AI
        }
        .to_owned();
    }
    if resolved == GOOGLE_VERTEX_AI && model.is_some_and(is_claude) {
        resolved = "anthropic_vertexai".to_owned();
    }
    Some(resolved)
}

/// Whether `model` (with any `route/` prefix removed) is a Claude model.
fn is_claude(model: &str) -> bool {
    let name = match model.split_once('/') {
        Some((_, rest)) if !rest.is_empty() => rest,
        _ => model,
    };
    name.to_ascii_lowercase().starts_with("claude")
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn renames_like_opiks_backend() {
        let cases = [
            ("openai", None, None, "openai"),
            (" OpenAI ", None, None, "OpenAI"),
            ("aws.bedrock", None, None, "bedrock"),
            ("AWS.Bedrock", None, None, "bedrock"),
            (
                "gcp.vertex_ai",
                Some("gemini-2.5-pro"),
                None,
                "google_vertexai",
            ),
            ("vertex_ai", None, None, "google_vertexai"),
            (
                "gcp.vertex_ai",
                Some("claude-sonnet-4"),
                None,
                "anthropic_vertexai",
            ),
            (
                "gcp.vertex_ai",
                Some("vertex_ai/claude-haiku-4-5"),
                None,
                "anthropic_vertexai",
            ),
            ("gcp.gemini", None, None, "google_ai"),
            ("az.ai.openai", None, None, "azure"),
            ("azure.ai.openai", None, None, "azure"),
            ("az.ai.inference", None, None, "az.ai.inference"),
            ("mistral_ai", None, None, "mistral"),
            ("x_ai", None, None, "xai"),
            (
                "google",
                None,
                Some("us-central1-aiplatform.googleapis.com"),
                "google_vertexai",
            ),
            (
                "gcp.gen_ai",
                None,
                Some("generativelanguage.googleapis.com"),
                "google_ai",
            ),
            ("google", None, None, "google_ai"),
            ("cohere", None, None, "cohere"),
        ];
        for (provider, model, host, expected) in cases {
            assert_eq!(
                normalize(provider, model, host).as_deref(),
                Some(expected),
                "{provider} {model:?} {host:?}"
            );
        }
        assert_eq!(normalize("  ", None, None), None);
    }
}
