// Starts the NHS.UK frontend's components (character count, error summary focus, radios with
// conditional questions). Every page works without it.
import { initAll } from "/assets/nhsuk-frontend.min.js";

initAll();
