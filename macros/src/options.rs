//! The attribute's options, in the Opik Python SDK's names (`@track`'s parameters in
//! `sdks/python/src/opik/decorator/base_track_decorator.py`, stored in `TrackOptions` in
//! `arguments_helpers.py`).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitBool, LitStr, Token, bracketed};

use crate::json::JsonIsh;

/// The options every `#[track(...)]` accepts, for the error message.
const KNOWN: &str = "name, type, tags, metadata, capture_input, ignore_arguments, \
                     capture_output, project_name, generations_aggregator, stream";

/// The span types Opik accepts (`SpanWrite.type`; anything else is a 400).
const TYPES: [(&str, &str); 4] = [
    ("general", "General"),
    ("llm", "Llm"),
    ("tool", "Tool"),
    ("guardrail", "Guardrail"),
];

/// The parsed `#[track(...)]` options.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<Expr>,
    /// The `SpanType` variant (`Llm`, ...).
    pub(crate) span_type: Option<Ident>,
    pub(crate) tags: Option<Expr>,
    pub(crate) metadata: Option<JsonIsh>,
    pub(crate) capture_input: Option<bool>,
    pub(crate) ignore_arguments: Vec<LitStr>,
    pub(crate) capture_output: Option<bool>,
    pub(crate) project_name: Option<Expr>,
    pub(crate) generations_aggregator: Option<Expr>,
    /// `Some(span)` when the `stream` flag was given.
    pub(crate) stream: Option<Span>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            // `type` is a keyword: read any identifier.
            let key = input.call(Ident::parse_any)?;
            let name = key.to_string();
            if seen.contains(&name) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{name}` is given twice"),
                ));
            }
            seen.push(name.clone());
            if name == "stream" {
                let on = if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    input.parse::<LitBool>()?.value
                } else {
                    true
                };
                options.stream = on.then(|| key.span());
            } else {
                options.parse_value(&key, &name, input)?;
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    }
}

impl Options {
    fn parse_value(&mut self, key: &Ident, name: &str, input: ParseStream<'_>) -> syn::Result<()> {
        if !KNOWN.split(", ").any(|k| k == name) {
            return Err(unknown(key, name));
        }
        input
            .parse::<Token![=]>()
            .map_err(|e| syn::Error::new(e.span(), format!("expected `{name} = ...`")))?;
        match name {
            "name" => self.name = Some(input.parse()?),
            "type" => self.span_type = Some(parse_type(input)?),
            "tags" => self.tags = Some(input.parse()?),
            "metadata" => self.metadata = Some(input.parse()?),
            "capture_input" => self.capture_input = Some(parse_bool(input, name)?),
            "capture_output" => self.capture_output = Some(parse_bool(input, name)?),
            "ignore_arguments" => self.ignore_arguments = parse_names(input)?,
            "project_name" => self.project_name = Some(input.parse()?),
            "generations_aggregator" => self.generations_aggregator = Some(input.parse()?),
            _ => return Err(unknown(key, name)),
        }
        Ok(())
    }

    /// The `SpanType` expression.
    pub(crate) fn span_type_tokens(&self) -> TokenStream {
        let variant = self
            .span_type
            .clone()
            .unwrap_or_else(|| Ident::new("General", Span::call_site()));
        quote!(::tower_opik::SpanType::#variant)
    }
}

fn unknown(key: &Ident, name: &str) -> syn::Error {
    let hint = match name {
        "flush" => " (call `SpanStore::flush` where the Python SDK would flush)",
        "create_duplicate_root_span" | "source" => " (not supported by the Rust `#[track]`)",
        "capture" | "input" => " (did you mean `capture_input`?)",
        "output" => " (did you mean `capture_output`?)",
        "ignore" | "skip" => " (did you mean `ignore_arguments`?)",
        "span_type" | "kind" => " (did you mean `type`?)",
        "project" => " (did you mean `project_name`?)",
        "aggregator" => " (did you mean `generations_aggregator`?)",
        _ => "",
    };
    syn::Error::new(
        key.span(),
        format!("unknown `#[track]` option `{name}`{hint}; the options are: {KNOWN}"),
    )
}

fn parse_bool(input: ParseStream<'_>, name: &str) -> syn::Result<bool> {
    input
        .parse::<LitBool>()
        .map(|b| b.value)
        .map_err(|e| syn::Error::new(e.span(), format!("`{name}` takes `true` or `false`")))
}

fn parse_type(input: ParseStream<'_>) -> syn::Result<Ident> {
    let expected =
        "`type` is one of \"general\", \"llm\", \"tool\", \"guardrail\" (Opik's span types)";
    let lit: LitStr = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), expected))?;
    let value = lit.value();
    TYPES
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, variant)| Ident::new(variant, lit.span()))
        .ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                format!("unknown span type \"{value}\": {expected}"),
            )
        })
}

/// `["a", "b"]` (the Python form) or `[a, b]`.
fn parse_names(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let content;
    bracketed!(content in input);
    let names = Punctuated::<Name, Token![,]>::parse_terminated(&content)?;
    Ok(names.into_iter().map(|n| n.0).collect())
}

struct Name(LitStr);

impl Parse for Name {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return input.parse().map(Name);
        }
        let ident = input.call(Ident::parse_any).map_err(|e| {
            syn::Error::new(
                e.span(),
                "`ignore_arguments` takes argument names: [\"client\", ...]",
            )
        })?;
        Ok(Name(LitStr::new(&ident.unraw().to_string(), ident.span())))
    }
}
