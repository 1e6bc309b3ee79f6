// cdk-nag 3 acknowledgments. Every call site states why the finding is accepted; this file only keeps
// the id format in one place. A finding with a detail (IAM5's wildcard, for one) is acknowledged by its
// full id, e.g. `AwsSolutions-IAM5[Resource::*]`: cdk-nag 3 has no prefix matching, so acknowledging
// one wildcard never hides another. The plain id (stored by CDK as `Annotation::AwsSolutions-...`) is
// honoured both by cdk-nag's own check (the tests call it directly) and on `cdk synth`; the CLI's hint
// `AwsSolutions::AwsSolutions-...` works on synth only.
import { Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, rule: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: rule, reason });
}
