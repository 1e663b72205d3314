// Errors shared by the key modules (kept apart so the page loads scrypt only when a key is opened).

export class KeyFileError extends Error {
  constructor(message, reason = 'invalid') {
    super(message);
    this.reason = reason; // 'invalid' | 'passphrase' (the tag did not verify)
  }
}
