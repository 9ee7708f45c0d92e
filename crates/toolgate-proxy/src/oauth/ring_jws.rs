//! The JWS signature checks `jsonwebtoken` asks its crypto provider for, done with `ring` —
//! the library TLS already brings into the binary — instead of a second set of RSA, ECDSA
//! and EdDSA implementations. Verification only: toolgate never signs a token.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as ring_sig;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes this the provider `jsonwebtoken` uses (once per process; later calls do nothing).
pub(super) fn install() {
    let _ = PROVIDER.install_default();
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(ErrorKind::UnsupportedAlgorithm.into())
}

/// How a key of the algorithm is checked.
enum Scheme {
    /// RSA, from the JWK's modulus and exponent.
    Rsa(&'static ring_sig::RsaParameters),
    /// An EC point (0x04 ‖ x ‖ y) or an Ed25519 key, as `DecodingKey::from_jwk` makes them.
    Point(&'static dyn ring_sig::VerificationAlgorithm),
}

fn scheme(algorithm: Algorithm) -> Option<Scheme> {
    Some(match algorithm {
        Algorithm::RS256 => Scheme::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Scheme::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Scheme::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Scheme::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Scheme::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Scheme::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => Scheme::Point(&ring_sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => Scheme::Point(&ring_sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => Scheme::Point(&ring_sig::ED25519),
        // Shared secrets (HS*) are refused before a key is looked up, and never checked
        // here; nor is any algorithm a later version of the library adds.
        _ => return None,
    })
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let scheme = scheme(*algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
    if algorithm.family() != key.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        scheme,
        key: key.kind().clone(),
    }))
}

struct RingVerifier {
    algorithm: Algorithm,
    scheme: Scheme,
    key: DecodingKeyKind,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match (&self.scheme, &self.key) {
            (Scheme::Rsa(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                ring_sig::RsaPublicKeyComponents { n, e }.verify(params, message, signature)
            }
            (Scheme::Point(algorithm), DecodingKeyKind::SecretOrDer(point)) => {
                ring_sig::UnparsedPublicKey::new(*algorithm, point).verify(message, signature)
            }
            _ => return Err(signature::Error::new()),
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn verify(signature: &[u8], message: &[u8], key: &DecodingKey, algorithm: Algorithm) -> bool {
        install();
        jsonwebtoken::crypto::verify(&b64(signature), message, key, algorithm).unwrap_or(false)
    }

    #[test]
    fn es256_and_eddsa_verify_and_refuse_what_they_should() {
        let rng = SystemRandom::new();
        let message = b"header.payload";

        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("a key pair");
        let point = pair.public_key().as_ref();
        let key = DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..]))
            .expect("a key");
        let signature = pair.sign(&rng, message).expect("signed");
        assert!(verify(signature.as_ref(), message, &key, Algorithm::ES256));
        assert!(!verify(
            signature.as_ref(),
            b"header.other",
            &key,
            Algorithm::ES256
        ));
        // The key is an EC key: no other family's algorithm may use it.
        assert!(!verify(signature.as_ref(), message, &key, Algorithm::RS256));

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("a key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key pair");
        let key = DecodingKey::from_ed_components(&b64(pair.public_key().as_ref())).expect("a key");
        let signature = pair.sign(message);
        assert!(verify(signature.as_ref(), message, &key, Algorithm::EdDSA));
        assert!(!verify(
            signature.as_ref(),
            b"header.other",
            &key,
            Algorithm::EdDSA
        ));
        assert!(!verify(
            signature.as_ref(),
            message,
            &DecodingKey::from_secret(b"k").expect("a key"),
            Algorithm::HS256
        ));
    }
}
