// The Hardhat node of `careledger bench --via http` (see README.md): 50 funded accounts, no automine,
// a block every 200 ms, a 300M block gas limit. Contracts are compiled by peer.js with the solc
// package (Hardhat's own compile task would download a compiler, which this machine cannot).
module.exports = {
  solidity: "0.8.30",
  networks: {
    hardhat: {
      chainId: 31337,
      accounts: { mnemonic: "test test test test test test test test test test test junk", count: 50 },
      mining: { auto: false, interval: 200 },
      blockGasLimit: 300_000_000,
      gas: 10_000_000,
      loggingEnabled: false,
    },
  },
};
