/**
 * Errors and outcomes as JupyterLab notifications, carrying the server's own message.
 */
import { Notification } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

/** The words to show for an error: the server's message, or why the server was not reached. */
export function messageOf(error: unknown): string {
  if (error instanceof ServerConnection.NetworkError) {
    return 'the Jupyter server could not be reached; is it still running?';
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/**
 * Show that `action` failed and why (the server's message).
 *
 * @returns the notification's id
 */
export function showError(action: string, error: unknown): string {
  console.error(`jupyter-mlplat: ${action} failed`, error);
  return Notification.error(`${action}: ${messageOf(error)}`, { autoClose: 10_000 });
}
