// A jspurefix initiator for tickdb's tests: logs on to the FIX acceptor, sends a
// NewOrderSingle, an OrderStatusRequest and an OrderCancelRequest, prints every application
// message it receives as one JSON line ({"type", "fields"}), and logs out.
// Usage: node client.js '{"host","port","sender","target","password","sym","clordid"}'
'use strict'
require('reflect-metadata')
const { SessionLauncher } = require('jspurefix/dist/runtime')
const { AsciiSession } = require('jspurefix/dist/transport')
const { JsFixWinstonLogFactory, WinstonLogger } = require('jspurefix/dist/config')

const args = JSON.parse(process.argv[2])

function emit (type, fields) {
  process.stdout.write(JSON.stringify({ type, fields }) + '\n')
}

class TestSession extends AsciiSession {
  constructor (config) {
    super(config)
    this.step = 0
  }

  onApplicationMsg (msgType, view) {
    const o = view.toObject()
    emit(msgType, o)
    if (msgType !== '8') return
    if (o.ExecType === '0' && o.ClOrdID === args.clordid) {
      this.send('H', { ClOrdID: args.clordid, Instrument: { Symbol: args.sym }, Side: '1' })
    } else if (o.ExecType === 'I') {
      this.send('F', {
        OrigClOrdID: args.clordid,
        ClOrdID: args.clordid + '-cxl',
        Instrument: { Symbol: args.sym },
        Side: '1',
        TransactTime: new Date(),
        OrderQtyData: { OrderQty: 100 }
      })
    } else if (o.ExecType === '4') {
      setTimeout(() => this.done(), 100)
    }
  }

  onReady () {
    emit('ready', {})
    this.send('D', {
      ClOrdID: args.clordid,
      Instrument: { Symbol: args.sym },
      Side: '1',
      TransactTime: new Date(),
      OrderQtyData: { OrderQty: 100 },
      OrdType: '2',
      Price: 12.34,
      TimeInForce: '0'
    })
  }

  onLogon () { return true }
  onStopped () { emit('stopped', {}) }
  onDecoded () {}
  onEncoded () {}
}

class Launcher extends SessionLauncher {
  constructor () {
    const config = {
      application: {
        reconnectSeconds: 10,
        type: 'initiator',
        name: 'tickdb_test',
        tcp: { host: args.host, port: args.port },
        protocol: 'ascii',
        dictionary: 'repo44'
      },
      Username: '',
      Password: args.password,
      EncryptMethod: 0,
      ResetSeqNumFlag: true,
      HeartBtInt: 30,
      SenderCompId: args.sender,
      TargetCompID: args.target,
      BeginString: 'FIX.4.4'
    }
    super(config, null, new JsFixWinstonLogFactory(WinstonLogger.consoleOptions('error')))
  }

  makeFactory () {
    return { makeSession: (c) => new TestSession(c) }
  }
}

new Launcher().run().then(() => process.exit(0)).catch((e) => {
  console.error(e)
  process.exit(1)
})
setTimeout(() => { console.error('timed out'); process.exit(2) }, 20000)
