//! `metadata = {"key": value, ...}`: a JSON-ish literal, as `serde_json::json!` reads it,
//! turned into calls that never panic (`json!` unwraps the serialization of every
//! interpolated value).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token, braced, bracketed, token};

/// A value of the literal: an object, an array, `null`, or any Rust expression whose value
/// is `Serialize`.
pub(crate) enum JsonIsh {
    Object(Vec<(LitStr, JsonIsh)>),
    Array(Vec<JsonIsh>),
    Null,
    Expr(Box<Expr>),
}

impl Parse for JsonIsh {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(token::Brace) {
            let content;
            braced!(content in input);
            let entries = Punctuated::<Entry, Token![,]>::parse_terminated(&content)?;
            return Ok(JsonIsh::Object(
                entries.into_iter().map(|e| (e.key, e.value)).collect(),
            ));
        }
        if input.peek(token::Bracket) {
            let content;
            bracketed!(content in input);
            let items = Punctuated::<JsonIsh, Token![,]>::parse_terminated(&content)?;
            return Ok(JsonIsh::Array(items.into_iter().collect()));
        }
        if input.peek(Ident) && input.fork().parse::<Ident>().is_ok_and(|i| i == "null") {
            let ahead = input.fork();
            ahead.parse::<Ident>()?;
            if ahead.is_empty() || ahead.peek(Token![,]) {
                input.parse::<Ident>()?;
                return Ok(JsonIsh::Null);
            }
        }
        Ok(JsonIsh::Expr(Box::new(input.parse()?)))
    }
}

struct Entry {
    key: LitStr,
    value: JsonIsh,
}

impl Parse for Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "a `metadata` key is a string literal: metadata = {\"key\": value}",
            )
        })?;
        input.parse::<Token![:]>()?;
        let value = input.parse()?;
        Ok(Entry { key, value })
    }
}

impl ToTokens for JsonIsh {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(match self {
            JsonIsh::Object(entries) => {
                let entries = entries.iter().map(|(k, v)| quote!((#k, #v)));
                quote!(::tower_opik::__private::object([#(#entries),*]))
            }
            JsonIsh::Array(items) => quote!(::tower_opik::__private::array([#(#items),*])),
            JsonIsh::Null => quote!(::tower_opik::__private::Value::Null),
            JsonIsh::Expr(expr) => {
                quote_spanned!(expr.span()=> ::tower_opik::__private::json(&(#expr)))
            }
        });
    }
}
