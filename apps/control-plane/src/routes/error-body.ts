/** The API's error body, `{"error": {code, message, details?}}`: the app's error handler and routes answer with it. */
export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, ...(details !== undefined ? { details } : {}) } };
}
