/**
 * Live status from the server: `GET mlplat/api/events`, a server-sent-events stream.
 *
 * The server pushes `event: run` (a `DescribeRun`) whenever one of the owner's runs or steps
 * changes state and `event: endpoint` (a `DescribeEndpoint`) on deploy changes. The browser's
 * `EventSource` reconnects by itself after a dropped connection; when the server refuses the
 * stream (an error status closes it for good) this class reconnects with a growing delay. No
 * polling.
 */
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { IDescribeEndpoint, IDescribeRun } from './api';
import { eventSourceUrl } from './request';

/** The part of `EventSource` used here (a fake in tests). */
export interface IEventSourceLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onerror: ((event: Event) => void) | null;
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string, init: EventSourceInit) => IEventSourceLike;

export type ConnectionState = 'connecting' | 'open' | 'closed';

/** `EventSource.CLOSED`: the browser gave up and will not reconnect by itself. */
const CLOSED = 2;

export namespace MLPlatEvents {
  export interface IOptions {
    /** The server; default: JupyterLab's own. */
    serverSettings?: ServerConnection.ISettings;
    /** How to open the stream; default: the browser's `EventSource`. */
    factory?: EventSourceFactory;
    /** First reconnection delay after the server refused the stream, in ms (doubles up to 60 s). */
    retryDelay?: number;
  }
}

/**
 * The one connection to `GET mlplat/api/events`, as signals.
 */
export class MLPlatEvents implements IDisposable {
  constructor(options: MLPlatEvents.IOptions = {}) {
    this._serverSettings = options.serverSettings;
    this._factory =
      options.factory ?? ((url, init) => new EventSource(url, init) as unknown as IEventSourceLike);
    this._firstDelay = options.retryDelay ?? 2000;
    this._delay = this._firstDelay;
  }

  /** A run or one of its steps changed state. */
  get runChanged(): ISignal<this, IDescribeRun> {
    return this._runChanged;
  }

  /** An endpoint got a new revision (deploy, traffic, rollback, undeploy). */
  get endpointChanged(): ISignal<this, IDescribeEndpoint> {
    return this._endpointChanged;
  }

  /** `open` after every (re)connection: listeners refresh what they may have missed. */
  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }

  get state(): ConnectionState {
    return this._state;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Open the stream (again); does nothing while one is open. */
  start(): void {
    if (this._isDisposed || this._source) {
      return;
    }
    this._clearTimer();
    const settings = this._serverSettings ?? ServerConnection.makeSettings();
    const url = eventSourceUrl('events', settings);
    const source = this._factory(url, {
      withCredentials: settings.init?.credentials === 'include'
    });
    this._source = source;
    this._setState('connecting');
    source.onopen = () => {
      this._delay = this._firstDelay;
      this._setState('open');
    };
    source.onerror = () => {
      if (source.readyState === CLOSED) {
        // Refused (401/403/404/500) or not an event stream: the browser will not retry.
        source.close();
        if (this._source === source) {
          this._source = null;
        }
        this._setState('closed');
        this._scheduleRetry();
      } else {
        this._setState('connecting'); // dropped; EventSource reconnects by itself
      }
    };
    source.addEventListener('run', event => this._dispatch(event, this._runChanged));
    source.addEventListener('endpoint', event => this._dispatch(event, this._endpointChanged));
  }

  /** Close the stream; `start()` opens it again. */
  stop(): void {
    this._clearTimer();
    if (this._source) {
      this._source.close();
      this._source = null;
    }
    this._setState('closed');
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this.stop();
    this._isDisposed = true;
    Signal.clearData(this);
  }

  private _dispatch<T>(event: MessageEvent, signal: Signal<this, T>): void {
    let data: T;
    try {
      data = JSON.parse(event.data) as T;
    } catch {
      console.error('jupyter-mlplat: an event that is not JSON', event.data);
      return;
    }
    signal.emit(data);
  }

  private _scheduleRetry(): void {
    if (this._isDisposed || this._timer !== null) {
      return;
    }
    const delay = this._delay;
    this._delay = Math.min(this._delay * 2, 60_000);
    this._timer = setTimeout(() => {
      this._timer = null;
      this.start();
    }, delay);
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _setState(state: ConnectionState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _serverSettings?: ServerConnection.ISettings;
  private _factory: EventSourceFactory;
  private _source: IEventSourceLike | null = null;
  private _state: ConnectionState = 'closed';
  private _firstDelay: number;
  private _delay: number;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _isDisposed = false;
  private _runChanged = new Signal<this, IDescribeRun>(this);
  private _endpointChanged = new Signal<this, IDescribeEndpoint>(this);
  private _stateChanged = new Signal<this, ConnectionState>(this);
}
