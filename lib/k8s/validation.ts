/**
 * The API server's syntax rules for names and labels (k8s.io/apimachinery
 * pkg/util/validation). Each check returns why a value is invalid, or null. Length is checked
 * first and every regex is an anchored character class, so checks stay linear in the input.
 */

/** A value for an error message: JSON-quoted (no raw quotes or newlines), long ones cut. */
export function quoted(v: unknown): string {
  if (typeof v === 'string') return v.length > 64 ? `${JSON.stringify(v.slice(0, 64))}… (${v.length} characters)` : JSON.stringify(v);
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    // A cycle or a BigInt, from code rather than JSON.
  }
  if (text === undefined) return `(${typeof v})`;
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

const LOWER_ALNUM_DASH = /^[a-z0-9-]+$/;
const LOWER_ALNUM = /^[a-z0-9]$/;

function dnsLabelFault(v: string, max: number): string | null {
  if (v.length === 0) return 'must not be empty';
  if (v.length > max) return `must be no more than ${max} characters`;
  if (!LOWER_ALNUM_DASH.test(v)) return "must consist of lower case alphanumeric characters or '-'";
  if (!LOWER_ALNUM.test(v[0]) || !LOWER_ALNUM.test(v[v.length - 1])) return 'must start and end with an alphanumeric character';
  return null;
}

/** RFC 1123 label: namespaces, port names. */
export function dns1123LabelProblem(v: string): string | null {
  const fault = dnsLabelFault(v, 63);
  return fault && `${quoted(v)} is not a valid DNS label (RFC 1123): ${fault}`;
}

/** RFC 1035 label: Service names (a letter first). */
export function dns1035LabelProblem(v: string): string | null {
  const fault = dnsLabelFault(v, 63) ?? (/^[a-z]/.test(v) ? null : 'must start with a lower case letter');
  return fault && `${quoted(v)} is not a valid DNS-1035 label: ${fault}`;
}

/** RFC 1123 subdomain: EndpointSlice, node and Pod names. */
export function dns1123SubdomainProblem(v: string): string | null {
  let fault: string | null = v.length > 253 ? 'must be no more than 253 characters' : null;
  if (fault === null) {
    for (const label of v.split('.')) {
      fault = dnsLabelFault(label, 253);
      if (fault) {
        fault = `each dot-separated part ${fault}`;
        break;
      }
    }
  }
  return fault && `${quoted(v)} is not a valid DNS subdomain (RFC 1123): ${fault}`;
}

/** IANA_SVC_NAME (RFC 6335), what a named targetPort must be. */
export function ianaSvcNameProblem(v: string): string | null {
  let fault: string | null = null;
  if (v.length === 0 || v.length > 15) fault = 'must be 1 to 15 characters';
  else if (!LOWER_ALNUM_DASH.test(v)) fault = "must consist of lower case alphanumeric characters or '-'";
  else if (!/[a-z]/.test(v)) fault = 'must contain at least one letter';
  else if (v.includes('--')) fault = 'must not contain consecutive hyphens';
  else if (v.startsWith('-') || v.endsWith('-')) fault = 'must not begin or end with a hyphen';
  return fault && `${quoted(v)} is not a valid port name (IANA_SVC_NAME): ${fault}`;
}

const QNAME_CHARS = /^[A-Za-z0-9_.-]+$/;
const ALNUM = /^[A-Za-z0-9]$/;

function qualifiedNamePartFault(v: string): string | null {
  if (v.length === 0) return 'must not be empty';
  if (v.length > 63) return 'must be no more than 63 characters';
  if (!QNAME_CHARS.test(v)) return "must consist of alphanumeric characters, '-', '_' or '.'";
  if (!ALNUM.test(v[0]) || !ALNUM.test(v[v.length - 1])) return 'must start and end with an alphanumeric character';
  return null;
}

/** A label key: an optional DNS subdomain prefix and `/`, then a name of up to 63 characters. */
export function labelKeyProblem(v: string): string | null {
  const parts = v.split('/');
  let fault: string | null = null;
  if (parts.length > 2) fault = "must have at most one '/'";
  else if (parts.length === 2 && parts[0] === '') fault = 'prefix part must not be empty';
  else if (parts.length === 2 && dns1123SubdomainProblem(parts[0])) fault = 'prefix part must be a DNS subdomain';
  else {
    const name = qualifiedNamePartFault(parts[parts.length - 1]);
    if (name) fault = `name part ${name}`;
  }
  return fault && `${quoted(v)} is not a valid label key: ${fault}`;
}

/** A label value: empty, or up to 63 alphanumerics, '-', '_', '.', alphanumeric at both ends. */
export function labelValueProblem(v: string): string | null {
  const fault = v === '' ? null : qualifiedNamePartFault(v);
  return fault && `${quoted(v)} is not a valid label value: ${fault}`;
}

/** A fully qualified domain name (FQDN EndpointSlice addresses): at least two labels, an optional trailing dot. */
export function fqdnProblem(v: string): string | null {
  const name = v.endsWith('.') ? v.slice(0, -1) : v;
  let fault = dns1123SubdomainProblem(name) ? 'must be a DNS subdomain' : null;
  if (fault === null && !name.includes('.')) fault = 'must have at least two dot-separated parts';
  if (fault === null && name.split('.').some((l) => l.length > 63)) fault = 'each part must be no more than 63 characters';
  return fault && `${quoted(v)} is not a fully qualified domain name: ${fault}`;
}
