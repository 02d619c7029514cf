// The numbers of IKEv2 on the wire (RFC 7296 §3 and the IANA "Internet Key Exchange Version 2
// (IKEv2) Parameters" registry), defined once. The codec (message.ts, sk.ts) and the session
// use these names; nothing else in lib/ike spells a protocol number.
//
// Transform IDs (encryption, PRF, integrity, key exchange groups) belong to transforms.ts.

/** Major version 2, minor version 0, as the version octet carries it (MjVer << 4 | MnVer). */
export const IKE_VERSION = 0x20;
export const IKE_MAJOR_VERSION = 2;

/** Bytes of the fixed IKE header (§3.1), of the generic payload header (§3.2), of an SPI in the header. */
export const IKE_HEADER_BYTES = 28;
export const PAYLOAD_HEADER_BYTES = 4;
export const IKE_SPI_BYTES = 8;

/** Exchange types (§3.1). 0-33 are reserved (IKEv1 uses some of them). */
export const Exchange = {
  IKE_SA_INIT: 34,
  IKE_AUTH: 35,
  CREATE_CHILD_SA: 36,
  INFORMATIONAL: 37,
} as const;

/** Header flags (§3.1): the bits of the Flags octet, `|X|X|R|V|I|X|X|X|`. */
export const HeaderFlag = {
  /** I: sent by the original initiator of the IKE SA. */
  INITIATOR: 0x08,
  /** V: the sender speaks a higher major version. Sent as 0, ignored on receipt. */
  VERSION: 0x10,
  /** R: this message is a response. */
  RESPONSE: 0x20,
} as const;

/** The C bit of the generic payload header's second octet (§3.2). */
export const PAYLOAD_CRITICAL = 0x80;

/** Payload types (§3.2, and RFC 7383 for SKF). 0 is "no next payload". */
export const PayloadType = {
  NONE: 0,
  SA: 33,
  KE: 34,
  IDi: 35,
  IDr: 36,
  CERT: 37,
  CERTREQ: 38,
  AUTH: 39,
  Nonce: 40,
  Notify: 41,
  Delete: 42,
  Vendor: 43,
  TSi: 44,
  TSr: 45,
  SK: 46,
  CP: 47,
  EAP: 48,
  /** Encrypted and Authenticated Fragment (RFC 7383). */
  SKF: 53,
} as const;

/** Security protocol identifiers (§3.3.1): in proposals, Notify and Delete payloads. */
export const ProtocolId = {
  IKE: 1,
  AH: 2,
  ESP: 3,
} as const;

/** Substructure markers in a proposal's and a transform's first octet (§3.3.1, §3.3.2). */
export const LAST_SUBSTRUCTURE = 0;
export const MORE_PROPOSALS = 2;
export const MORE_TRANSFORMS = 3;

/** Transform types (§3.3.2). */
export const TransformType = {
  ENCR: 1,
  PRF: 2,
  INTEG: 3,
  /** "Diffie-Hellman group", renamed Key Exchange Method by RFC 9370. */
  DH: 4,
  ESN: 5,
} as const;

/** Transform attribute types (§3.3.5). Key Length is the only one, and it is TV (AF=1). */
export const TransformAttribute = {
  KEY_LENGTH: 14,
} as const;
/** The AF bit of an attribute's first 16 bits: 1 for TV (2-byte value), 0 for TLV. */
export const ATTRIBUTE_FORMAT_TV = 0x8000;

/** Traffic selector types (§3.13.1). */
export const TsType = {
  IPV4_ADDR_RANGE: 7,
  IPV6_ADDR_RANGE: 8,
} as const;

/** Identification types (§3.5). */
export const IdType = {
  ID_IPV4_ADDR: 1,
  ID_FQDN: 2,
  ID_RFC822_ADDR: 3,
  ID_IPV6_ADDR: 5,
  ID_DER_ASN1_DN: 9,
  ID_DER_ASN1_GN: 10,
  ID_KEY_ID: 11,
} as const;

/** Authentication methods (§3.8; Digital Signature from RFC 7427 §7). */
export const AuthMethod = {
  RSA_SIGNATURE: 1,
  SHARED_KEY_MIC: 2,
  DSS_SIGNATURE: 3,
  DIGITAL_SIGNATURE: 14,
} as const;

/** Certificate encodings (§3.6). */
export const CertEncoding = {
  X509_SIGNATURE: 4,
} as const;

/** Nonce data is 16 to 256 bytes (§3.9). */
export const NONCE_MIN_BYTES = 16;
export const NONCE_MAX_BYTES = 256;
/** Hash of SPIs, address and port in the NAT_DETECTION_* notifications: SHA-1 (§2.23). */
export const NAT_DETECTION_HASH_BYTES = 20;
/** COOKIE data is 1 to 64 bytes (§2.6, §3.10.1). */
export const COOKIE_MAX_BYTES = 64;
/** A CERTREQ for X.509 names its CAs by the SHA-1 hashes of their public keys (§3.7). */
export const CERTREQ_HASH_BYTES = 20;

/**
 * Notify message types (§3.10.1 and the IANA registry). Below 16384 an error, from 16384 a
 * status. Error types are the ones RFC 7296 defines; status types those this implementation
 * sends, reads, or is likely to see from strongSwan, with the RFC that defines each.
 */
export const NotifyType = {
  // Errors (RFC 7296 §3.10.1).
  UNSUPPORTED_CRITICAL_PAYLOAD: 1,
  INVALID_IKE_SPI: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_SYNTAX: 7,
  INVALID_MESSAGE_ID: 9,
  INVALID_SPI: 11,
  NO_PROPOSAL_CHOSEN: 14,
  INVALID_KE_PAYLOAD: 17,
  AUTHENTICATION_FAILED: 24,
  SINGLE_PAIR_REQUIRED: 34,
  NO_ADDITIONAL_SAS: 35,
  INTERNAL_ADDRESS_FAILURE: 36,
  FAILED_CP_REQUIRED: 37,
  TS_UNACCEPTABLE: 38,
  INVALID_SELECTORS: 39,
  TEMPORARY_FAILURE: 43,
  CHILD_SA_NOT_FOUND: 44,
  // Status (RFC 7296 §3.10.1 unless noted).
  INITIAL_CONTACT: 16384,
  SET_WINDOW_SIZE: 16385,
  ADDITIONAL_TS_POSSIBLE: 16386,
  IPCOMP_SUPPORTED: 16387,
  NAT_DETECTION_SOURCE_IP: 16388,
  NAT_DETECTION_DESTINATION_IP: 16389,
  COOKIE: 16390,
  USE_TRANSPORT_MODE: 16391,
  HTTP_CERT_LOOKUP_SUPPORTED: 16392,
  REKEY_SA: 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED: 16394,
  NON_FIRST_FRAGMENTS_ALSO: 16395,
  /** RFC 4555 (MOBIKE). */
  MOBIKE_SUPPORTED: 16396,
  /** RFC 4739. */
  MULTIPLE_AUTH_SUPPORTED: 16404,
  /** RFC 5685. */
  REDIRECT_SUPPORTED: 16406,
  /** RFC 7383. */
  IKEV2_FRAGMENTATION_SUPPORTED: 16430,
  /** RFC 7427. */
  SIGNATURE_HASH_ALGORITHMS: 16431,
} as const;

/** The first status notify type; anything below is an error (§3.10.1). */
export const NOTIFY_STATUS_MIN = 16384;

export function isErrorNotify(notifyType: number): boolean {
  return notifyType < NOTIFY_STATUS_MIN;
}

function invert(table: Record<string, number>): Map<number, string> {
  return new Map(Object.entries(table).map(([name, value]) => [value, name]));
}

const NOTIFY_NAMES = invert(NotifyType);
const PAYLOAD_NAMES = invert(PayloadType);
const EXCHANGE_NAMES = invert(Exchange);

/** A notify type for the log: its name, or "error 42" / "status 16500" for one we have no name for. */
export function notifyTypeName(notifyType: number): string {
  return NOTIFY_NAMES.get(notifyType) ?? `${isErrorNotify(notifyType) ? 'error' : 'status'} ${notifyType}`;
}

/** A payload type for the log: "SA", "Notify", ... or "payload 99". */
export function payloadTypeName(payloadType: number): string {
  return PAYLOAD_NAMES.get(payloadType) ?? `payload ${payloadType}`;
}

/** An exchange type for the log: "IKE_AUTH", ... or "exchange 99". */
export function exchangeName(exchange: number): string {
  return EXCHANGE_NAMES.get(exchange) ?? `exchange ${exchange}`;
}
