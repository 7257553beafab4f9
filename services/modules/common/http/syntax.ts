/** HTTP field syntax (RFC 9110 §5.6.2, §5.5) shared by the request and response parsers. */

/** A token: method names and field names. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Controls other than HTAB (a bare CR or LF, NUL…), which no field value may contain. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const CONTROL_CHARS = /[\x00-\x08\x0a-\x1f\x7f]/;
