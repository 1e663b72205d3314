#!/usr/bin/env node
// The Hardhat peer of `careledger bench --via http` (benchmark only). Subcommands:
//
//   node peer.js serve   [--host 127.0.0.1] [--port 0]
//       Run the Hardhat node of hardhat.config.js in this process (50 accounts, automine off,
//       200 ms interval mining, 300M block gas limit, logging off) and print
//       "READY http://HOST:PORT" once it answers.
//   node peer.js prepare --url URL --out BODIES --hashes HASHES [--signers 50] [--per-signer N] [--seed S]
//       Compile and deploy MedRec, then pre-sign N grant() transactions per signer (consecutive
//       nonces) as eth_sendRawTransaction bodies for careledger-loadgen: BODIES gets one line per
//       transaction (<lane>\t/\t<base64 JSON-RPC body>), HASHES the transaction hashes in the same
//       order. Prints one JSON object (contract, first block, gas limit, counts).
//   node peer.js count   --url URL --hashes HASHES --after BLOCK
//       Read every block after BLOCK and the receipts of its transactions, and print one JSON object:
//       the committed transactions of HASHES counted from the blocks, how many reverted, and each
//       block's number, timestamp, transaction count and gas used.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const HERE = __dirname;
const MNEMONIC = "test test test test test test test test test test test junk"; // Hardhat's well-known dev accounts
const CHAIN_ID = 31337n;

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith("--")) throw new Error(`${a} needs a value`);
    args[a.slice(2)] = value;
    i++;
  }
  return args;
}

function need(args, name) {
  if (args[name] === undefined) throw new Error(`--${name} is required`);
  return args[name];
}

// --- serve ------------------------------------------------------------------------------------------

async function serve(args) {
  process.env.HARDHAT_DISABLE_TELEMETRY_PROMPT = "true";
  process.chdir(HERE);
  const hre = require("hardhat");
  const { subtask } = require("hardhat/config");
  subtask("node:server-ready").setAction(async ({ address, port }) => {
    console.log(`READY http://${address}:${port}`);
  });
  await hre.run("node", { hostname: args.host || "127.0.0.1", port: Number(args.port || 0) });
}

// --- compile ----------------------------------------------------------------------------------------

function compile() {
  const source = fs.readFileSync(path.join(HERE, "contracts", "MedRec.sol"), "utf8");
  const solc = require("solc");
  const key = crypto.createHash("sha256").update(solc.version()).update(source).digest("hex");
  const cached = path.join(HERE, "artifacts", "MedRec.json");
  if (fs.existsSync(cached)) {
    const doc = JSON.parse(fs.readFileSync(cached, "utf8"));
    if (doc.key === key) return doc;
  }
  const input = {
    language: "Solidity",
    sources: { "MedRec.sol": { content: source } },
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun",
                outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join("\n")}`);
  const contract = output.contracts["MedRec.sol"].MedRec;
  const doc = { key, solc: solc.version(), abi: contract.abi, bytecode: "0x" + contract.evm.bytecode.object };
  fs.mkdirSync(path.dirname(cached), { recursive: true });
  fs.writeFileSync(cached, JSON.stringify(doc));
  return doc;
}

// --- prepare ----------------------------------------------------------------------------------------

async function rpc(url, method, params) {
  let res;
  for (let attempt = 1; ; attempt++) {
    try { // a kept-alive socket the node closed while we were signing fails once: retry on a new one
      res = await fetch(url, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
      break;
    } catch (err) {
      if (attempt >= 3) throw new Error(`${method}: ${err.cause && err.cause.message ? err.cause.message : err.message}`);
    }
  }
  const doc = await res.json();
  if (doc.error) throw new Error(`${method}: ${doc.error.message}`);
  return doc.result;
}

async function waitForReceipt(url, hash, seconds = 30) {
  const stop = Date.now() + seconds * 1000;
  while (Date.now() < stop) {
    const receipt = await rpc(url, "eth_getTransactionReceipt", [hash]);
    if (receipt) return receipt;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`transaction ${hash} not mined within ${seconds}s`);
}

async function prepare(args) {
  const { ethers } = require("ethers");
  const url = need(args, "url");
  const signers = Number(args.signers || 50);
  const perSigner = Number(args["per-signer"] || 20);
  const seed = args.seed || "7";
  if (!(signers >= 1 && signers <= 50)) throw new Error("--signers must be 1..50 (the node has 50 accounts)");
  if (!(perSigner >= 1)) throw new Error("--per-signer must be at least 1");
  const artifact = compile();
  const wallets = [];
  for (let i = 0; i < signers; i++) {
    wallets.push(ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`));
  }
  const iface = new ethers.Interface(artifact.abi);
  const latest = await rpc(url, "eth_getBlockByNumber", ["latest", false]);
  const baseFee = BigInt(latest.baseFeePerGas || "0x3b9aca00");
  const maxPriorityFeePerGas = 1_000_000_000n;
  const maxFeePerGas = baseFee * 4n + maxPriorityFeePerGas; // room for the base fee to rise under load
  const nonces = [];
  for (const w of wallets) nonces.push(BigInt(await rpc(url, "eth_getTransactionCount", [w.address, "pending"])));

  // deploy from the first signer (its later nonces follow)
  const deployTx = ethers.Transaction.from({
    type: 2, chainId: CHAIN_ID, nonce: Number(nonces[0]), data: artifact.bytecode, gasLimit: 3_000_000n,
    maxFeePerGas, maxPriorityFeePerGas, value: 0n,
  });
  const deployHash = await rpc(url, "eth_sendRawTransaction", [await wallets[0].signTransaction(deployTx)]);
  const deployed = await waitForReceipt(url, deployHash);
  if (deployed.status !== "0x1") throw new Error("MedRec deployment reverted");
  const contract = deployed.contractAddress;
  nonces[0] += 1n;

  const grantees = [];
  for (let i = 0; i < 8; i++) grantees.push(ethers.getAddress(ethers.dataSlice(ethers.id(`org-${seed}-${i}`), 12)));
  const expiry = BigInt(Math.floor(Date.now() / 1000) + 365 * 86400);
  const call = (s, n) => iface.encodeFunctionData("grant", [
    ethers.id(`consent-${seed}-${s}-${n}`), grantees[(((s + n) % grantees.length) + grantees.length) % grantees.length], ethers.id(`record-${seed}-${s}-${n}`),
    expiry]);
  const estimate = BigInt(await rpc(url, "eth_estimateGas", [{ from: wallets[0].address, to: contract, data: call(0, -1) }]));
  const gasLimit = (estimate * 3n) / 2n;

  const bodies = fs.openSync(need(args, "out"), "w");
  const hashes = fs.openSync(need(args, "hashes"), "w");
  let id = 0;
  for (let n = 0; n < perSigner; n++) {
    const lines = [];
    const hashLines = [];
    for (let s = 0; s < signers; s++) {
      const tx = ethers.Transaction.from({
        type: 2, chainId: CHAIN_ID, nonce: Number(nonces[s] + BigInt(n)), to: contract, data: call(s, n),
        gasLimit, maxFeePerGas, maxPriorityFeePerGas, value: 0n,
      });
      tx.signature = wallets[s].signingKey.sign(tx.unsignedHash);
      const raw = tx.serialized;
      const body = JSON.stringify({ jsonrpc: "2.0", id: id++, method: "eth_sendRawTransaction", params: [raw] });
      lines.push(`${s}\t/\t${Buffer.from(body).toString("base64")}\n`);
      hashLines.push(`${ethers.keccak256(raw)}\n`);
    }
    fs.writeSync(bodies, lines.join(""));
    fs.writeSync(hashes, hashLines.join(""));
  }
  fs.closeSync(bodies);
  fs.closeSync(hashes);
  const head = Number(await rpc(url, "eth_blockNumber", []));
  console.log(JSON.stringify({
    contract, solc: artifact.solc, deploy_block: Number(deployed.blockNumber), after_block: head,
    signers, per_signer: perSigner, txs: signers * perSigner, gas_limit: Number(gasLimit),
    gas_estimate: Number(estimate), max_fee_per_gas: maxFeePerGas.toString(),
  }));
}

// --- count ------------------------------------------------------------------------------------------

async function count(args) {
  const url = need(args, "url");
  const after = Number(need(args, "after"));
  const wanted = new Set(fs.readFileSync(need(args, "hashes"), "utf8").split("\n").filter(Boolean));
  const head = Number(await rpc(url, "eth_blockNumber", []));
  const blocks = [];
  let committed = 0;
  let reverted = 0;
  let others = 0;
  for (let number = after + 1; number <= head; number++) {
    const block = await rpc(url, "eth_getBlockByNumber", ["0x" + number.toString(16), false]);
    const ours = block.transactions.filter((h) => wanted.has(h));
    others += block.transactions.length - ours.length;
    committed += ours.length;
    for (const h of ours) {
      const receipt = await rpc(url, "eth_getTransactionReceipt", [h]);
      if (receipt.status !== "0x1") reverted++;
    }
    blocks.push({ number, timestamp: Number(block.timestamp), txs: ours.length, gas_used: Number(block.gasUsed) });
  }
  console.log(JSON.stringify({ after, head, committed, reverted, other_txs: others, blocks }));
}

async function main() {
  const [command, ...rest] = process.argv.slice(2);
  const args = parseArgs(rest);
  if (command === "serve") return serve(args);
  if (command === "prepare") return prepare(args);
  if (command === "count") return count(args);
  if (command === "compile") return console.log(JSON.stringify({ solc: compile().solc }));
  throw new Error("usage: node peer.js serve|prepare|count|compile [--options]");
}

main().catch((err) => {
  console.error(`peer.js: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
