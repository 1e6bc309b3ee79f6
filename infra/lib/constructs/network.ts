// The network: a VPC whose private subnets hold the functions, NAT gateways on retained Elastic IPs
// (the fixed egress IPs customers allow-list), VPC endpoints for every AWS API the functions call,
// and the functions' security group (outbound HTTPS and the configured Server/DC ports only).
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { RegionConfig } from '../config';
import { logGroup } from './common';

export class Network {
  readonly vpc: ec2.Vpc;
  readonly functionSecurityGroup: ec2.SecurityGroup;
  /** Public IPv4 addresses of the NAT gateways, in AZ order. */
  readonly egressIps: string[] = [];
  readonly egressAllocationIds: string[] = [];

  /** Resources go into `stack`'s own scope (see common.ts: logical ids). */
  constructor(stack: Stack, config: RegionConfig, key: kms.IKey) {
    const cfg = config;
    if (cfg.egressIpAllocations) {
      for (const a of cfg.egressIpAllocations) {
        this.egressAllocationIds.push(a.allocationId);
        this.egressIps.push(a.publicIp);
      }
    } else {
      for (let i = 1; i <= cfg.azCount; i++) {
        // Allocated explicitly and retained: the NAT gateway may be replaced, the address stays. No
        // property here may ever change (a change would replace the EIP and so the address).
        const eip = new ec2.CfnEIP(stack, `EgressIp${i}`, {
          domain: 'vpc',
          tags: [{ key: 'Name', value: `${cfg.stackName}-egress-${i}` }],
        });
        eip.applyRemovalPolicy(RemovalPolicy.RETAIN);
        this.egressAllocationIds.push(eip.attrAllocationId);
        this.egressIps.push(eip.ref); // Ref of AWS::EC2::EIP is its public IPv4 address
      }
    }

    const flowLogs = logGroup(stack, 'VpcFlowLogs', cfg, key);
    this.vpc = new ec2.Vpc(stack, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cfg.vpcCidr),
      maxAzs: cfg.azCount,
      natGateways: cfg.azCount,
      natGatewayProvider: ec2.NatProvider.gateway({ eipAllocationIds: this.egressAllocationIds }),
      subnetConfiguration: [
        // Only the NAT gateways live here; they bring their own Elastic IPs.
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      // Nothing uses the default security group; restricting it would need a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
      flowLogs: {
        all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL },
      },
    });
    const privateSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

    this.functionSecurityGroup = new ec2.SecurityGroup(stack, 'FunctionsSecurityGroup', {
      vpc: this.vpc,
      description: `${cfg.stackName} Lambdas: outbound HTTPS (Atlassian, AWS endpoints) and configured Server/DC ports`,
      allowAllOutbound: false,
    });
    this.functionSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS: Atlassian and AWS endpoints');
    for (const port of cfg.extraEgressPorts) {
      this.functionSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(port), `Server/DC hosts on port ${port}`);
    }

    // AWS APIs stay inside the VPC; only Atlassian traffic leaves through the NAT gateways.
    this.vpc.addGatewayEndpoint('DynamoDbEndpoint', {
      service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
      subnets: [privateSubnets],
    });
    const endpointSecurityGroup = new ec2.SecurityGroup(stack, 'EndpointsSecurityGroup', {
      vpc: this.vpc,
      description: `${cfg.stackName} interface endpoints: HTTPS from the Lambdas only`,
      allowAllOutbound: false,
    });
    endpointSecurityGroup.addIngressRule(this.functionSecurityGroup, ec2.Port.tcp(443), 'HTTPS from the Lambdas');
    const interfaceEndpoints: Array<[string, ec2.InterfaceVpcEndpointAwsService]> = [
      ['SecretsManagerEndpoint', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
      ['KmsEndpoint', ec2.InterfaceVpcEndpointAwsService.KMS],
      ['EventBridgeEndpoint', ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE],
      ['CloudWatchLogsEndpoint', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
    ];
    for (const [id, service] of interfaceEndpoints) {
      this.vpc.addInterfaceEndpoint(id, {
        service,
        subnets: privateSubnets,
        privateDnsEnabled: true,
        securityGroups: [endpointSecurityGroup],
        open: false,
      });
    }
  }
}
