//! Derive macro registering flock-rs artifact types.
//!
//! `#[derive(FlockType)]` implements `FlockType` for a struct or enum, giving it a
//! stable artifact type name: the type's own name, or the one set with
//! `#[flock(name = "...")]` (Python Flock's `@flock_type(name=...)`).
//! Crates that use `flock-core` directly rather than the `flock` facade write
//! `#[flock(crate = "flock_core")]`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr, parse_macro_input};

/// Implements `FlockType` with a stable type name.
///
/// Attributes: `#[flock(name = "CustomName")]` overrides the name,
/// `#[flock(crate = "path")]` names the crate that defines `FlockType`
/// (default `::flock`).
#[proc_macro_derive(FlockType, attributes(flock))]
pub fn derive_flock_type(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let mut name = input.ident.to_string();
    let mut krate: syn::Path = syn::parse_quote!(::flock);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("flock")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().trim().is_empty() {
                    return Err(meta.error("artifact type name must not be empty"));
                }
                name = lit.value();
                Ok(())
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse()?;
                Ok(())
            } else {
                Err(meta
                    .error("unknown flock attribute; expected `name = \"..\"` or `crate = \"..\"`"))
            }
        })?;
    }
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "FlockType cannot be derived for generic types: an artifact type needs one stable name",
        ));
    }
    let ident = &input.ident;
    Ok(quote! {
        impl #krate::FlockType for #ident {
            const TYPE_NAME: &'static str = #name;
        }
    })
}
