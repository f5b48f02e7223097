// Loaded at the start of <body>, before anything is drawn: the NHS.UK frontend styles its
// components for JavaScript only when these classes are present. An external file, so that the
// Content-Security-Policy can forbid inline script.
document.body.className +=
  " js-enabled" + ("noModule" in HTMLScriptElement.prototype ? " nhsuk-frontend-supported" : "");
