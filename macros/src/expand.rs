//! The code `#[track]` generates around a function's body.
//!
//! - The span opens first (`__private::start`), with the tags, metadata and input.
//! - The body runs as it was written, with the span current: in a closure passed to
//!   `Span::in_scope` for a `fn`, in an `async move` block run by `OpikFutureExt::in_span`
//!   for an `async fn` (so `return` and `?` keep their meaning: they leave the block).
//! - The result is recorded (the error, the output) and the span ends; a returned stream
//!   is tracked instead and ends the span when it ends.
//!
//! Every path is absolute (`::tower_opik::...`, `::core::...`) and every local the macro
//! adds has a `mixed_site` span, so the body can neither see nor shadow them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Type};

use crate::options::Options;

/// Expands `#[track(options)]` on `item`.
pub(crate) fn expand(options: Options, item: ItemFn) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span(),
            "`#[track]` cannot be used on a `const fn`: a span is opened at run time",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && matches!(**ty, Type::Never(_))
    {
        return Err(syn::Error::new(
            ty.span(),
            "`#[track]` on a function that never returns (`-> !`) would never end its span",
        ));
    }
    let arguments = arguments(&item);
    check_ignored(&options, &arguments)?;
    let output = Output::of(&sig.output, sig.asyncness.is_some(), &options)?;

    let span = Ident::new("__opik_span", Span::mixed_site());
    let out = Ident::new("__opik_out", Span::mixed_site());
    let start = start(&options, &item, &span);
    let input = input(&options, &arguments, &span);
    let run = run(&item, &output, &span);
    let finish = finish(&options, &output, &span, &out);

    let ItemFn {
        attrs, vis, sig, ..
    } = &item;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let #span = #start;
            #input
            let #out = #run;
            #finish
        }
    })
}

/// A captured argument: the name it is recorded under and the binding it is read from.
struct Argument {
    binding: Ident,
}

/// The bindings of the function's arguments, in order (`self` is never captured, as in
/// the Python SDK's `inspect_helpers.extract_inputs`); a destructured argument
/// (`Json(request): Json<Request>`) contributes the names it binds.
fn arguments(item: &ItemFn) -> Vec<Argument> {
    let mut out = Vec::new();
    for input in &item.sig.inputs {
        if let FnArg::Typed(typed) = input {
            bindings(&typed.pat, &mut out);
        }
    }
    out
}

fn bindings(pat: &Pat, out: &mut Vec<Argument>) {
    match pat {
        Pat::Ident(p) => {
            out.push(Argument {
                binding: p.ident.clone(),
            });
            if let Some((_, sub)) = &p.subpat {
                bindings(sub, out);
            }
        }
        Pat::Tuple(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| bindings(&f.pat, out)),
        Pat::Slice(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::Reference(p) => bindings(&p.pat, out),
        Pat::Paren(p) => bindings(&p.pat, out),
        Pat::Type(p) => bindings(&p.pat, out),
        _ => {}
    }
}

fn name_of(ident: &Ident) -> String {
    syn::ext::IdentExt::unraw(ident).to_string()
}

/// Every name in `ignore_arguments` must be an argument: a typo would silently capture
/// what the user meant to keep out (an API key, a large document).
fn check_ignored(options: &Options, arguments: &[Argument]) -> syn::Result<()> {
    for ignored in &options.ignore_arguments {
        let name = ignored.value();
        if name != "self" && !arguments.iter().any(|a| name_of(&a.binding) == name) {
            let known: Vec<String> = arguments.iter().map(|a| name_of(&a.binding)).collect();
            return Err(syn::Error::new(
                ignored.span(),
                format!(
                    "`ignore_arguments`: this function has no argument `{name}` (its arguments: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// What the function returns, and so how its result is recorded.
enum Output {
    /// A value (a `Result` too): the error and the output are recorded, the span ends.
    Value {
        /// The return type with `impl Trait` replaced by `_`, for the typing edge.
        erased: Type,
        /// Where a non-`Serialize` output is reported.
        span: Span,
        /// A `fn` returning `impl Future`: the value is the future's output, and the span
        /// ends when the future completes.
        future: bool,
    },
    /// A stream, tracked as the span; `in_result`: `Result<stream, E>`; `boxed`: the
    /// declared type is a boxed stream (`Pin<Box<dyn Stream>>`, `BoxStream`).
    Stream {
        erased: Type,
        in_result: bool,
        boxed: bool,
        /// Where items that are not `StreamChunk` are reported.
        span: Span,
    },
}

impl Output {
    fn of(output: &ReturnType, is_async: bool, options: &Options) -> syn::Result<Self> {
        let (ty, span): (Type, Span) = match output {
            ReturnType::Default => (syn::parse_quote!(()), Span::call_site()),
            ReturnType::Type(_, ty) => ((**ty).clone(), ty.span()),
        };
        let mut erased = ty.clone();
        EraseImplTrait.visit_type_mut(&mut erased);
        let ok = result_ok(&ty);
        let streamed =
            options.stream.is_some() || is_impl_stream(&ty) || ok.is_some_and(is_impl_stream);
        if !streamed {
            if let Some(aggregator) = &options.generations_aggregator {
                return Err(syn::Error::new(
                    aggregator.span(),
                    "`generations_aggregator` applies to a function that returns a stream \
                     (`impl Stream<Item = ...>`, or add the `stream` option)",
                ));
            }
            let future = !is_async && is_impl(&ty, "Future");
            return Ok(Output::Value {
                erased,
                span,
                future,
            });
        }
        let (in_result, boxed) = match ok {
            _ if is_impl_stream(&ty) => (false, false),
            Some(ok) => (true, !is_impl_stream(ok)),
            None => (false, true),
        };
        Ok(Output::Stream {
            erased,
            in_result,
            boxed,
            span,
        })
    }

    fn erased(&self) -> &Type {
        match self {
            Output::Value { erased, .. } | Output::Stream { erased, .. } => erased,
        }
    }
}

/// `impl Trait` cannot be written in a `let`: `_` lets the compiler infer it.
struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(i) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](i.span()),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// `impl Stream<Item = T> (+ ...)`.
fn is_impl_stream(ty: &Type) -> bool {
    is_impl(ty, "Stream")
}

/// `impl Trait<...> (+ ...)` where a bound's path ends in `name`.
fn is_impl(ty: &Type, name: &str) -> bool {
    match ty {
        Type::ImplTrait(i) => i.bounds.iter().any(|b| {
            matches!(b, syn::TypeParamBound::Trait(t)
                if t.path.segments.last().is_some_and(|s| s.ident == name))
        }),
        Type::Paren(p) => is_impl(&p.elem, name),
        Type::Group(g) => is_impl(&g.elem, name),
        _ => false,
    }
}

/// The `T` of `Result<T, ...>` (any path ending in `Result`: `io::Result<T>`,
/// `anyhow::Result<T>`).
fn result_ok(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Opens the span, with its tags and metadata.
fn start(options: &Options, item: &ItemFn, span: &Ident) -> TokenStream {
    let name = match &options.name {
        Some(name) => quote!(#name),
        None => {
            let ident = &item.sig.ident;
            let name = LitStr::new(&name_of(ident), ident.span());
            quote!(#name)
        }
    };
    let span_type = options.span_type_tokens();
    let project = match &options.project_name {
        Some(p) => quote!(::core::option::Option::Some(
            ::core::convert::AsRef::<str>::as_ref(&(#p))
        )),
        None => quote!(::core::option::Option::None),
    };
    let tags = match &options.tags {
        Some(Expr::Array(array)) => {
            let tags = array.elems.iter();
            quote!(#(::tower_opik::Span::add_tag(&#span, #tags);)*)
        }
        Some(tags) => quote!(::tower_opik::__private::add_tags(&#span, #tags);),
        None => quote!(),
    };
    let metadata = match &options.metadata {
        Some(metadata) => quote!(::tower_opik::Span::extend_metadata(&#span, #metadata);),
        None => quote!(),
    };
    quote! {{
        let #span = ::tower_opik::__private::start(#name, #span_type, #project);
        if !::tower_opik::Span::is_none(&#span) {
            #tags
            #metadata
        }
        #span
    }}
}

/// Captures the arguments (by name) as the span's input.
fn input(options: &Options, arguments: &[Argument], span: &Ident) -> TokenStream {
    if options.capture_input == Some(false) {
        return quote!();
    }
    let input = Ident::new("__opik_input", Span::mixed_site());
    let captured = arguments.iter().filter_map(|a| {
        let name = name_of(&a.binding);
        if options.ignore_arguments.iter().any(|i| i.value() == name) {
            return None;
        }
        let binding = &a.binding;
        let name = LitStr::new(&name, binding.span());
        // Spanned at the argument: a non-`Serialize` one is reported there.
        Some(quote_spanned! {binding.span()=>
            ::tower_opik::__private::Input::arg(&mut #input, #name, &#binding);
        })
    });
    quote! {
        if !::tower_opik::Span::is_none(&#span) {
            let mut #input = ::tower_opik::__private::Input::new();
            #(#captured)*
            ::tower_opik::__private::Input::finish(#input, &#span);
        }
    }
}

/// Runs the body with the span current.
fn run(item: &ItemFn, output: &Output, span: &Ident) -> TokenStream {
    // The body's statements, spliced (not its block as a tail expression: a one-line body
    // `{ x }` would then trip `unused_braces` in the user's crate).
    let block = &item.block.stmts;
    let erased = output.erased();
    let fake = Ident::new("__opik_fake_return", Span::mixed_site());
    // Gives the block the function's return type, so that `?` converts errors into it
    // (an `async` block or a closure infers its own otherwise). Never runs.
    let typing_edge = quote! {
        #[allow(
            unknown_lints, unreachable_code, clippy::diverging_sub_expression,
            clippy::let_unit_value, clippy::unreachable, clippy::let_with_type_underscore,
            clippy::empty_loop, clippy::needless_return
        )]
        if false {
            let #fake: #erased = loop {};
            return #fake;
        }
    };
    if item.sig.asyncness.is_some() {
        quote! {
            ::tower_opik::OpikFutureExt::in_span(
                async move {
                    #typing_edge
                    #(#block)*
                },
                ::core::clone::Clone::clone(&#span),
            )
            .await
        }
    } else {
        quote! {
            ::tower_opik::Span::in_scope(&#span, || {
                #typing_edge
                #(#block)*
            })
        }
    }
}

/// Records the result and ends the span (or hands it to the returned stream).
fn finish(options: &Options, output: &Output, span: &Ident, out: &Ident) -> TokenStream {
    let record_error = quote! {{
        #[allow(unused_imports)]
        use ::tower_opik::__private::outcome::*;
        (&&&&&&&&ErrorOf(&#out)).__opik_error(&#span);
    }};
    match output {
        Output::Value {
            span: ret_span,
            future,
            ..
        } => {
            let record_output = if options.capture_output == Some(false) {
                quote!()
            } else {
                // Only the method is spanned at the return type: a non-`Serialize` output
                // is reported there, while the rest stays macro code (no lints on it).
                let method = Ident::new("__opik_output", *ret_span);
                quote! {{
                    #[allow(unused_imports)]
                    use ::tower_opik::__private::outcome::*;
                    (&&Captured(&#out)).#method(&#span);
                }}
            };
            let record = quote! {
                if !::tower_opik::Span::is_none(&#span) {
                    #record_error
                    #record_output
                }
                ::tower_opik::Span::end(&#span);
                #out
            };
            if !*future {
                return record;
            }
            // The body made the future (inside the span); the span ends with its output.
            let future = Ident::new("__opik_future", Span::mixed_site());
            quote! {
                let #future = #out;
                async move {
                    let #out = ::tower_opik::OpikFutureExt::in_span(
                        #future,
                        ::core::clone::Clone::clone(&#span),
                    )
                    .await;
                    #record
                }
            }
        }
        Output::Stream {
            in_result,
            boxed,
            span: ret_span,
            ..
        } => {
            let stream = Ident::new("__opik_stream", Span::mixed_site());
            // Spanned at the return type: items that are not `StreamChunk` are reported there.
            let tracked = match (&options.generations_aggregator, options.capture_output) {
                (Some(f), _) => quote_spanned! {*ret_span=>
                    ::tower_opik::__private::stream_with(#span, #stream, #f)
                },
                (None, Some(false)) => quote_spanned! {*ret_span=>
                    ::tower_opik::__private::stream_no_output(#span, #stream)
                },
                (None, _) => quote_spanned! {*ret_span=>
                    ::tower_opik::__private::stream_text(#span, #stream)
                },
            };
            let tracked = if *boxed {
                quote!(::std::boxed::Box::pin(#tracked))
            } else {
                tracked
            };
            if *in_result {
                let error = Ident::new("__opik_error", Span::mixed_site());
                quote! {
                    #record_error
                    match #out {
                        ::core::result::Result::Ok(#stream) => ::core::result::Result::Ok(#tracked),
                        ::core::result::Result::Err(#error) => {
                            ::tower_opik::Span::end(&#span);
                            ::core::result::Result::Err(#error)
                        }
                    }
                }
            } else {
                quote! {
                    let #stream = #out;
                    #tracked
                }
            }
        }
    }
}
