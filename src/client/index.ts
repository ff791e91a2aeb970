// The client library's entry point (package export "./client"): ChatClient and
// the pieces an app may swap (store, socket factory, uploader).
export { ChatClient, randomId, type ChatClientOptions, type HistoryPage } from "./client";
export { Api, ApiError, type ChatSettings, type DeviceIdentity, type FetchLike, type Group, type MemberReceipt, type TokenSource } from "./api";
export { backoffDelay, defaultSocketFactory, type BackoffOptions, type SocketFactory, type SocketLike } from "./connection";
export { IndexedDbStore, indexedDbAvailable } from "./idb";
export { defaultUploader, multipartUpload, singleUpload, type UploadOptions, type UploadProgress, type Uploader } from "./media";
export { MemoryStore, type ClientStore } from "./store";
export { PREKEY_REFILL_BELOW } from "./keyring";
export { STATUS_RANK } from "./types";
export type * from "./types";
export { chatKey, parseChatParam, type Chat } from "../protocol";
