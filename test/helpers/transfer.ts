// The verified TCP transfer lives in the lab (the bench uses it too).
export { randomFile, verifiedTransfer, type TransferOptions, type TransferResult } from '../../lab/transfer';
