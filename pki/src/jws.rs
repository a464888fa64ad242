//! Detached JWS signatures of the hub's `cluster-info`, as Kubernetes' bootstrap signer writes
//! them (`jws-kubeconfig-<token-id>` in the `kube-public/cluster-info` ConfigMap) and kubeadm's
//! token discovery checks them.
//!
//! HS256 with the bootstrap token's secret as the key, the protected header exactly
//! `{"alg":"HS256","kid":"<token-id>"}`, base64url without padding, and the payload left out:
//! `<header>..<signature>`. A joining agent that holds the token can so tell that the
//! `cluster-info` it read without trusting the server was written by someone who knows the
//! token, before it sends the token anywhere.

use ring::hmac;

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn header(token_id: &str) -> String {
    b64(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#).as_bytes())
}

fn mac(header: &str, token_secret: &str, content: &str) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token_secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(header.as_bytes());
    ctx.update(b".");
    ctx.update(b64(content.as_bytes()).as_bytes());
    ctx.sign()
}

/// The detached signature of `content` with the token `token_id.token_secret`.
pub fn detached_signature(token_id: &str, token_secret: &str, content: &str) -> String {
    let h = header(token_id);
    let tag = mac(&h, token_secret, content);
    format!("{h}..{}", b64(tag.as_ref()))
}

/// Whether `signature` is the detached signature of `content` with the token. The comparison
/// takes the same time wherever the signatures differ.
pub fn verify_detached(signature: &str, token_id: &str, token_secret: &str, content: &str) -> bool {
    let expected = detached_signature(token_id, token_secret, content);
    use subtle::ConstantTimeEq;
    expected.as_bytes().ct_eq(signature.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vector of Kubernetes' own tests of its bootstrap JWS.
    const ID: &str = "joshua";
    const SECRET: &str = "my voice is my passcode";
    const CONTENT: &str = "Hello from the other side. I must have called a thousand times.";
    const SIG: &str =
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8";

    #[test]
    fn signatures_match_kubernetes_bootstrap_signer() {
        assert_eq!(detached_signature(ID, SECRET, CONTENT), SIG);
        assert!(verify_detached(SIG, ID, SECRET, CONTENT));
    }

    #[test]
    fn a_changed_content_secret_id_or_signature_does_not_verify() {
        assert!(!verify_detached(SIG, ID, SECRET, &format!("{CONTENT} ")));
        assert!(!verify_detached(
            SIG,
            ID,
            "my voice is my passcodE",
            CONTENT
        ));
        assert!(!verify_detached(SIG, "joshub", SECRET, CONTENT));
        assert!(!verify_detached(&SIG[..SIG.len() - 1], ID, SECRET, CONTENT));
        assert!(!verify_detached("", ID, SECRET, CONTENT));
        // A signature with the payload attached is not the detached form kubeadm accepts.
        let attached = SIG.replace("..", &format!(".{}.", b64(CONTENT.as_bytes())));
        assert!(!verify_detached(&attached, ID, SECRET, CONTENT));
    }

    #[test]
    fn base64url_has_no_padding() {
        assert_eq!(b64(b"f"), "Zg");
        assert_eq!(b64(b"fo"), "Zm8");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(&[0xfb, 0xff]), "-_8");
    }
}
