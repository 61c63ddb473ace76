/**
 * Signed bundles: Ed25519 through Node's own crypto. The signature covers the exact bytes of a bundle's
 * manifest.json, and the manifest lists the SHA-256 of every other file, so one signature vouches for the
 * whole bundle. The signature file names the key that made it (the SHA-256 of the public key's DER bytes),
 * so a refusal can say whether the bundle was signed by another key or edited after signing.
 *
 * This module depends on node: built-ins only: bundles carry it (lib/) so that their runner can check a
 * signature on a device without LesionFuse.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LesionFuseError } from '../util/errors.js';

/** The signature file in a bundle. */
export const SIGNATURE_FILE = 'manifest.sig.json';

/** What `manifest.sig.json` holds. */
export interface BundleSignature {
  schema: 'lesionfuse.signature/1';
  algorithm: 'ed25519';
  /** The file whose bytes were signed. */
  signed: 'manifest.json';
  /** SHA-256 (hex) of the signer's public key (SPKI DER): which key signed. */
  keyId: string;
  /** The signer's public key (SPKI PEM), for information: trust comes from the key the verifier supplies. */
  publicKey: string;
  /** Base64 Ed25519 signature of manifest.json's bytes. */
  signature: string;
}

/** The id of a public key: SHA-256 of its SPKI DER encoding (hex). */
export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** A new Ed25519 key pair as PEM texts (private: PKCS#8, public: SPKI). */
export function generateSigningKeys(): { privateKeyPem: string; publicKeyPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new LesionFuseError(`cannot read the key (${(err as Error).message.split('\n')[0]})`, { subject: path });
  }
}

/** Load an Ed25519 private key (PEM) from a file. */
export function loadPrivateKey(path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readKeyFile(path));
  } catch (err) {
    if (err instanceof LesionFuseError) throw err;
    throw new LesionFuseError('is not a PEM private key (make one with `lesionfuse keygen`)', { subject: path });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new LesionFuseError(`is a ${key.asymmetricKeyType} key; bundles are signed with Ed25519 keys (lesionfuse keygen)`, { subject: path });
  return key;
}

/** Load an Ed25519 public key (PEM) from a file. A private key file is accepted too (its public half is used). */
export function loadPublicKey(path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(readKeyFile(path));
  } catch (err) {
    if (err instanceof LesionFuseError) throw err;
    throw new LesionFuseError('is not a PEM public key (lesionfuse keygen writes one as <name>.pub.pem)', { subject: path });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new LesionFuseError(`is a ${key.asymmetricKeyType} key; bundles are signed with Ed25519 keys`, { subject: path });
  return key;
}

/** Sign the bytes of manifest.json. */
export function signManifest(manifestBytes: Uint8Array, privateKey: KeyObject): BundleSignature {
  const publicKey = createPublicKey(privateKey);
  return {
    schema: 'lesionfuse.signature/1',
    algorithm: 'ed25519',
    signed: 'manifest.json',
    keyId: keyIdOf(publicKey),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    signature: Buffer.from(sign(null, manifestBytes, privateKey)).toString('base64'),
  };
}

/**
 * Check a signature against the key the verifier trusts. Throws a one-line LesionFuseError naming `subject`
 * that says which problem it is: unsigned, signed by another key, or manifest.json edited after signing.
 * Returns the key id.
 */
export function checkSignature(manifestBytes: Uint8Array, sig: unknown, trusted: KeyObject, subject: string): string {
  const want = keyIdOf(trusted);
  const s = sig as Partial<BundleSignature> | null;
  if (!s || s.schema !== 'lesionfuse.signature/1' || s.algorithm !== 'ed25519' || typeof s.signature !== 'string' || typeof s.keyId !== 'string') {
    throw new LesionFuseError(`${SIGNATURE_FILE} is not a LesionFuse Ed25519 signature`, { subject });
  }
  if (s.keyId !== want) {
    throw new LesionFuseError(`signed by another key (key id ${s.keyId.slice(0, 16)}...), not by the given public key (key id ${want.slice(0, 16)}...)`, { subject });
  }
  if (!verify(null, manifestBytes, trusted, Buffer.from(s.signature, 'base64'))) {
    throw new LesionFuseError(`manifest.json was edited after signing: the signature of key ${want.slice(0, 16)}... does not match it`, { subject });
  }
  return want;
}
